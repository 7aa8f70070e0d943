"""A real `manage.py qcluster` (3 workers) and sweeper over a file SQLite database."""

import os
import signal

import pytest

from tests.support import cluster as c
from tests.support.processes import base_env, manage, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path):
    env = base_env(tmp_path, TASK_TIMEOUT="6", TASK_GRACE="1", SWEEP_INTERVAL="0.3", RAG_TIMEOUT="3", LLM_TIMEOUT="3")
    c.prepare(env, tmp_path)
    return env


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "fortune.sqlite3"


@pytest.fixture
def cluster(env, tmp_path):
    process = c.start_cluster(env, tmp_path)
    yield process
    process.stop()


@pytest.fixture
def sweeper(env, tmp_path):
    process = manage(["sweep_tasks", "--loop"], env, tmp_path / "sweeper.log")
    yield process
    process.stop()


def test_nine_concurrent_tasks_all_succeed_and_each_runs_once(env, db_path, cluster):
    ids = c.submit(env, 9)
    wait_until(lambda: c.all_terminal(db_path, ids), 60, what="9 tasks to finish")
    rows = c.tasks(db_path)
    assert [rows[i]["status"] for i in ids] == ["succeeded"] * 9
    assert [rows[i]["deliveries"] for i in ids] == [1] * 9
    assert len({rows[i]["worker_pid"] for i in ids}) > 1, "the work should spread over workers"


def test_a_task_nobody_runs_ends_timed_out_by_its_deadline(env, db_path, cluster, sweeper):
    workers = c.worker_pids(env)
    c.stop_pids(workers, signal.SIGSTOP)  # every worker frozen: the task cannot run
    try:
        [task_id] = c.submit(env, 1)
        wait_until(lambda: c.all_terminal(db_path, [task_id]), 6 + 1 + 5, what="the sweeper")
        row = c.tasks(db_path)[task_id]
        assert (row["status"], row["error"]["code"]) == ("timed_out", "deadline_exceeded")
    finally:
        c.stop_pids(workers, signal.SIGCONT)
    # Thawed workers get the task late; it must stay as the sweeper left it.
    wait_until(lambda: c.tasks(db_path)[task_id]["deliveries"] >= 1, 20, what="the late delivery")
    assert c.tasks(db_path)[task_id]["status"] == "timed_out"


def test_the_cluster_stops_cleanly_on_sigterm_to_its_main_pid(env, cluster):
    cluster.popen.send_signal(signal.SIGTERM)
    assert cluster.popen.wait(30) == 0
    assert c.worker_pids(env) == [] or all(not _alive(p) for p in c.worker_pids(env))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
