"""Rescue with real clusters (issue 16): a worker or a whole cluster dies or freezes mid-run, and a
survivor finishes its tasks within the deadline, each result written once. On SQLite with the ORM
broker and on PostgreSQL with Redis; the fake LLM server counts the calls."""

import json
import os
import signal
import sqlite3
import time

import pytest
import redis

from tests.support import cluster as c
from tests.support.processes import Process, base_env, manage, wait_until
from tests.support.services import require_redis, scratch_postgres

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.support.fake_llm"]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
ROWS = """
SELECT t.id, t.status, t.stage, t.attempt, t.worker_pid, t.error, t.result,
       (SELECT count(*) FROM chat_message m WHERE m.task_id = t.id AND m.role = 'assistant') AS answers,
       t.finished_at < t.deadline AS before_deadline
FROM chat_fortunetask t
"""
# Quick detection for the tests; a 60 s deadline leaves room for a slow, busy machine.
RESCUE_ENV = {
    "TASK_TIMEOUT": "60",
    "TASK_GRACE": "1",
    "SWEEP_INTERVAL": "0.3",
    "ORPHAN_AFTER": "3",
    "ORPHAN_QUEUED_AFTER": "5",
    "RESCUE_MIN_SECONDS": "10",
    "RAG_TIMEOUT": "5",
    "LLM_TIMEOUT": "20",
}


def _uuid(raw: object) -> str:
    text = str(raw)
    if len(text) == 32:
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def rows(env: dict[str, str]) -> dict[str, dict]:
    """Task rows with their assistant-message count, read straight from the database."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20) as conn:
            conn.row_factory = sqlite3.Row
            found = [dict(r) for r in conn.execute(ROWS)]
    else:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, row_factory=dict_row) as conn:
            found = list(conn.execute(ROWS))
    return {_uuid(r["id"]): r | {"error": _json(r["error"]), "result": _json(r["result"])} for r in found}


def all_terminal(env, ids) -> bool:
    found = rows(env)
    return all(found[i]["status"] in TERMINAL for i in ids)


def cluster_of(clusters: list[Process], pid: int) -> Process:
    """The cluster whose process group (each runs in a session of its own) holds the worker."""
    group = os.getpgid(pid)
    return next(p for p in clusters if p.pid == group)


@pytest.fixture
def llm(fake_llm_server):
    fake_llm_server.control(mode="ok", chunk_delay=0.2, reset=True)  # L = 10 chunks x 0.2 s = 2 s
    return fake_llm_server


@pytest.fixture(params=["sqlite-orm", "postgres-redis"])
def env(request, tmp_path, llm):
    env = base_env(tmp_path, LLM_BASE_URL=llm.base_url, **RESCUE_ENV)
    if request.param == "sqlite-orm":
        c.prepare(env, tmp_path)
        yield env
        return
    redis_url = require_redis(db=12)
    redis.Redis.from_url(redis_url).flushdb()
    with scratch_postgres() as database_url:
        env |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        c.prepare(env, tmp_path)
        yield env
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def sweeper(env, tmp_path):
    process = manage(["sweep_tasks", "--loop"], env, tmp_path / "sweeper.log")
    yield process
    process.stop()


@pytest.fixture
def start(env, tmp_path):
    """Starts clusters (each in a session of its own) and stops whatever is left of them."""
    started: list[Process] = []

    def start_one(name: str) -> Process:
        expected = int(env.get("FORTUNE_WORKERS", "3")) * (len(started) + 1)
        process = manage(["qcluster"], env, tmp_path / f"{name}.log")
        started.append(process)
        wait_until(lambda: len(c.worker_pids(env)) >= expected, 90, interval=0.5, what=f"{name}'s workers")
        # Warming up takes ~20 s on a busy machine; a task handed to a cold cluster waits in its
        # queue meanwhile, and the other cluster would rightly take it over.
        workers = int(env.get("FORTUNE_WORKERS", "3"))
        wait_until(lambda: process.log().count("worker warmed up") >= workers, 90, interval=0.5, what="warm-up")
        return process

    yield start_one
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        process.stop()


def running_on(env, ids) -> list[dict]:
    return [r for i, r in rows(env).items() if i in ids and r["status"] == "running" and r["stage"] == "interpreting"]


def test_a_cluster_killed_mid_run_loses_no_task(env, start, sweeper, llm):
    first, second = start("first"), start("second")
    ids = c.submit(env, 30)
    victims = wait_until(lambda: running_on(env, ids), 60, interval=0.2, what="tasks reaching the LLM")
    doomed = cluster_of([first, second], victims[0]["worker_pid"])
    os.killpg(doomed.pid, signal.SIGKILL)  # the whole "host": main, sentinel, pusher, workers

    wait_until(lambda: all_terminal(env, ids), 180, interval=1, what="all 30 tasks to end")
    found = [rows(env)[i] for i in ids]
    succeeded = [r for r in found if r["status"] == "succeeded"]
    assert len(succeeded) >= 29, [(r["status"], r["error"]) for r in found if r["status"] != "succeeded"]
    assert any(r["attempt"] > 1 for r in found), "the dead cluster's tasks were re-run"
    assert [r["answers"] for r in succeeded] == [1] * len(succeeded), "a result written twice"
    reruns = sum(r["attempt"] - 1 for r in found)
    assert llm.calls() <= 30 + reruns, "an LLM call for a task no rescue gave back"


@pytest.mark.parametrize("env", ["sqlite-orm"], indirect=True)
@pytest.mark.parametrize("rescue_min, outcome", [("10", "succeeded"), ("1000", "worker_lost")])
def test_a_task_whose_worker_is_killed_is_rerun_or_ends_worker_lost_at_once(
    env, start, tmp_path, llm, rescue_min, outcome
):
    env = env | {"RESCUE_MIN_SECONDS": rescue_min}
    sweeper = manage(["sweep_tasks", "--loop"], env, tmp_path / "sweeper.log")
    try:
        start("cluster")
        llm.control(mode="slow", latency=0.5)  # the task lingers in `interpreting` for 5 s
        [task_id] = c.submit(env, 1)
        [victim] = wait_until(lambda: running_on(env, [task_id]), 60, interval=0.2, what="the task to reach the LLM")
        os.kill(victim["worker_pid"], signal.SIGKILL)
        llm.control(mode="ok", chunk_delay=0.02)
        wait_until(lambda: all_terminal(env, [task_id]), 40, interval=0.5, what="the task to end")
    finally:
        sweeper.stop()
    row = rows(env)[task_id]
    if outcome == "succeeded":
        assert (row["status"], row["attempt"], row["answers"]) == ("succeeded", 2, 1)
        assert row["worker_pid"] != victim["worker_pid"]
    else:
        assert (row["status"], row["error"]["code"], row["attempt"]) == ("timed_out", "worker_lost", 1)
    assert row["before_deadline"], "ended within the orphan detection time, not at deadline + grace"


@pytest.mark.parametrize("env", ["postgres-redis"], indirect=True)
def test_a_frozen_cluster_wakes_after_its_task_was_rescued_and_writes_nothing(env, start, sweeper, llm):
    first, second = start("first"), start("second")
    llm.control(mode="slow", latency=0.5)
    [task_id] = c.submit(env, 1)
    [victim] = wait_until(lambda: running_on(env, [task_id]), 60, interval=0.2, what="the task to reach the LLM")
    frozen = cluster_of([first, second], victim["worker_pid"])
    os.killpg(frozen.pid, signal.SIGSTOP)  # its heartbeat stops: to the others it is gone
    try:
        llm.control(mode="ok", chunk_delay=0.02)
        wait_until(lambda: rows(env)[task_id]["status"] in TERMINAL, 60, interval=0.5, what="the rescued run")
        rescued = rows(env)[task_id]
        assert (rescued["status"], rescued["attempt"], rescued["answers"]) == ("succeeded", 2, 1)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    # The frozen worker carries on with attempt 1: it reads the rest of its stream and tries to
    # save text and its result. Wait for its cluster's heartbeat and a few seconds more.
    wait_until(lambda: victim["worker_pid"] in c.worker_pids(env), 30, interval=0.5, what="the thawed cluster")
    wait_until(lambda: llm.stats()["calls"].get("chat_stream", 0) >= 2, 10, what="both runs' LLM calls")
    time.sleep(8)
    assert rows(env)[task_id] == rescued
