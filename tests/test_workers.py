"""Worker bookkeeping: Django-Q2's signals record busy/idle per worker; Stat says who is alive."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute
from django_q.status import Stat

from chat import signals, workers
from chat.pipeline import run_fortune_task
from monitoring.dashboard import worker_pool
from tests.support import cluster as c
from tests.support.fake_llm import fake_llm_server  # noqa: F401  (fixture)
from tests.support.processes import ROOT, base_env, wait_until
from tests.support.stat import HOST, fake_stat


@pytest.fixture
def stats(monkeypatch):
    """The live clusters Stat.get_all() reports; a test appends to it."""
    live: list = []
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: list(live)))
    return live


def q_task(task_id: str = "4f1c2b3a-0000-0000-0000-000000000001") -> dict:
    return {"id": "q-1", "name": "fortune-x", "func": "chat.pipeline.run_fortune_task", "args": [task_id], "kwargs": {}}


def my_record() -> dict | None:
    return cache.get(workers.worker_key(HOST, os.getpid()))


def test_it_knows_our_task_id_from_the_django_q_task(db):
    assert workers.fortune_task_id(run_fortune_task, q_task("abc")) == "abc"
    assert workers.fortune_task_id("chat.pipeline.run_fortune_task", q_task("abc")) == "abc"
    assert workers.fortune_task_id(print, {"func": "builtins.print", "args": ["abc"]}) is None


def test_pre_execute_marks_the_worker_busy_with_the_task(db):
    pre_execute.send(sender="django_q", func=run_fortune_task, task=q_task("abc"))
    entry = my_record()
    assert (entry["state"], entry["task"], entry["q_task"]) == ("busy", "abc", "q-1")
    assert entry["busy_since"] is not None


def test_post_execute_in_worker_marks_it_idle_again(db):
    pre_execute.send(sender="django_q", func=run_fortune_task, task=q_task())
    post_execute_in_worker.send(sender="django_q", func=run_fortune_task, task=q_task())
    assert (my_record()["state"], my_record()["task"], my_record()["busy_since"]) == ("idle", None, None)


def test_a_spawned_worker_shows_idle(db):
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert my_record()["state"] == "idle"


def test_a_failing_cache_never_fails_the_task(db, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(workers.cache, "set", broken)
    signals.task_started("django_q", func=run_fortune_task, task=q_task())  # must not raise


def test_records_expire_so_a_dead_worker_leaves_no_trace(db, settings):
    settings.OPS_WORKER_TTL = 1  # real time: the cache backend (database or Redis) expires it
    workers.record_busy(run_fortune_task, q_task())
    assert my_record() is not None
    time.sleep(1.2)
    assert my_record() is None


def test_the_pool_shows_the_live_clusters_workers_with_their_state(db, stats):
    stats.append(fake_stat(11, 12, 13))
    started = timezone.now() - timedelta(seconds=3)
    workers.record("busy", task="abc", now=started, pid=12, host=HOST)
    workers.record("idle", pid=13, host=HOST)
    pool = worker_pool()
    by_pid = {w["pid"]: w for w in pool["workers"]}
    assert [by_pid[p]["state"] for p in (11, 12, 13)] == ["idle", "busy", "idle"]
    assert by_pid[12]["task"] == "abc" and by_pid[12]["busy_ms"] >= 3000
    assert (pool["max_workers"], pool["busy"], pool["idle"]) == (3, 1, 2)
    assert pool["clusters"][0]["workers"] == [11, 12, 13]


def test_a_record_without_a_live_cluster_is_not_shown(db, stats):
    workers.record("busy", task="abc", pid=99, host=HOST)
    assert worker_pool()["workers"] == []


# --- A real cluster -----------------------------------------------------------------------------

WATCH = """
import json, time
from monitoring.dashboard import worker_pool
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    print("POOL=" + json.dumps(worker_pool(), default=str), flush=True)
    time.sleep(0.2)
"""


def watch_pool(env: dict, seconds: float) -> subprocess.Popen:
    """A child printing the worker pool as the cluster's own database and cache see it."""
    code = WATCH.format(seconds=seconds)
    args = [sys.executable, "manage.py", "shell", "-c", code]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def next_pool(watcher: subprocess.Popen, predicate, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = watcher.stdout.readline()
        if not line:
            break
        if line.startswith("POOL=") and predicate(pool := json.loads(line[5:])):
            return pool
    raise AssertionError("the worker pool never reached the expected state")


@pytest.mark.slow
def test_a_real_cluster_shows_three_workers_and_a_busy_one_while_a_task_runs(tmp_path, fake_llm_server):  # noqa: F811
    fake_llm_server.control(mode="slow", latency=0.25, reset=True)
    env = base_env(tmp_path, LLM_BASE_URL=fake_llm_server.base_url, LLM_TIMEOUT="20", TASK_TIMEOUT="30")
    c.prepare(env, tmp_path)
    cluster = c.start_cluster(env, tmp_path)
    watcher = watch_pool(env, 60)
    try:
        idle = next_pool(watcher, lambda p: len(p["workers"]) == 3, 20)
        assert {w["state"] for w in idle["workers"]} == {"idle"}
        [task_id] = c.submit(env, 1)
        busy = next_pool(watcher, lambda p: p["busy"] == 1, 20)
        [worker] = [w for w in busy["workers"] if w["state"] == "busy"]
        assert worker["task"] == task_id and worker["busy_since"]
        next_pool(watcher, lambda p: p["busy"] == 0, 40)
        wait_until(lambda: c.all_terminal(tmp_path / "fortune.sqlite3", [task_id]), 10, what="the task to end")
        assert c.tasks(tmp_path / "fortune.sqlite3")[task_id]["worker_pid"] == worker["pid"]
    finally:
        watcher.kill()
        watcher.wait()
        cluster.stop()
        fake_llm_server.control(mode="ok", reset=True)
