"""A real `manage.py qcluster` (3 workers) and sweeper over a file SQLite database."""

import os
import signal

import pytest

from tests.support import cluster as c
from tests.support.processes import base_env, manage, wait_until

pytestmark = pytest.mark.slow


pytest_plugins = ["tests.support.fake_llm"]


@pytest.fixture
def llm(fake_llm_server):
    """The fake LLM in ok mode; tests that need a task to linger switch it to slow."""
    fake_llm_server.control(mode="ok", chunk_delay=0.02, reset=True)
    return fake_llm_server


@pytest.fixture
def task_timeout() -> int:
    """Generous by default (worker start-up loads the embedding model); deadline tests shorten it."""
    return 60


@pytest.fixture
def env(tmp_path, llm, task_timeout):
    env = base_env(
        tmp_path,
        TASK_TIMEOUT=str(task_timeout),
        TASK_GRACE="1",
        SWEEP_INTERVAL="0.3",
        RAG_TIMEOUT="3",
        LLM_TIMEOUT="5",
        LLM_BASE_URL=llm.base_url,
    )
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


def test_nine_concurrent_tasks_all_succeed_and_each_runs_once(env, db_path, cluster, llm):
    ids = c.submit(env, 9)
    wait_until(lambda: c.all_terminal(db_path, ids), 60, what="9 tasks to finish")
    rows = c.tasks(db_path)
    assert [rows[i]["status"] for i in ids] == ["succeeded"] * 9
    assert llm.calls() == 9
    assert [rows[i]["deliveries"] for i in ids] == [1] * 9
    assert len({rows[i]["worker_pid"] for i in ids}) > 1, "the work should spread over workers"


@pytest.mark.parametrize("task_timeout", [6])
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


def _interpreting(db_path, task_id) -> dict | None:
    row = c.tasks(db_path)[task_id]
    return row if row["stage"] == "interpreting" else None


@pytest.mark.parametrize("task_timeout", [6])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_a_task_whose_worker_dies_or_freezes_mid_task_ends_by_deadline_plus_grace(
    env, db_path, cluster, sweeper, llm, sig
):
    llm.control(mode="slow", latency=1)  # the task lingers in `interpreting`
    [task_id] = c.submit(env, 1)
    row = wait_until(lambda: _interpreting(db_path, task_id), 10, what="the task to reach the LLM")
    os.kill(row["worker_pid"], sig)
    try:
        wait_until(lambda: c.all_terminal(db_path, [task_id]), 6 + 1 + 2, what="the task to end")
    finally:
        if sig == signal.SIGSTOP:
            os.kill(row["worker_pid"], signal.SIGKILL)  # a frozen worker would block the cluster's stop
    row = c.tasks(db_path)[task_id]
    assert (row["status"], row["error"]["code"]) == ("timed_out", "deadline_exceeded")


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
