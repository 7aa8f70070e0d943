"""Through a live server (Daphne + a real 3-worker cluster), not the test client: the web tier
never waits on a hung LLM, and a flood past the backlog limit is refused while accepted tasks finish."""

import time

import pytest

from tests.support.cluster import worker_pids
from tests.support.http import call
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.support.fake_llm"]

MAKE_USER = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"
BACKLOG = 4


@pytest.fixture
def server(tmp_path, fake_llm_server):
    fake_llm_server.control(mode="hang", reset=True)
    port = free_port()
    env = base_env(
        tmp_path,
        LLM_BASE_URL=fake_llm_server.base_url,
        LLM_TIMEOUT="8",
        LLM_CHUNK_TIMEOUT="8",
        TASK_TIMEOUT="90",
        MAX_QUEUED_TASKS=str(BACKLOG),
    )
    process = manage(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    wait_until(lambda: port_open(port), 90, what=f"the web server\n{process.log_path}")
    assert run_manage(["shell", "-c", MAKE_USER], env).returncode == 0
    wait_until(lambda: len(worker_pids(env)) == 3, 30, what="3 workers")
    yield f"http://127.0.0.1:{port}/api/v1"
    process.stop()


def timed(method: str, url: str, body=None, token=None) -> tuple[float, int, dict, dict]:
    started = time.monotonic()
    status, payload, headers = call(method, url, body, token)
    return time.monotonic() - started, status, payload, headers


def test_the_api_answers_at_once_while_every_worker_waits_on_a_hung_llm(server, fake_llm_server):
    _, body, _ = call("POST", f"{server}/auth/token", {"username": "alice", "password": "alice-pw"})
    token = body["token"]
    tasks = [
        call("POST", f"{server}/async-chat/tasks", {"question": f"Will job {n} go well?"}, token)[1] for n in range(3)
    ]
    wait_until(lambda: fake_llm_server.stats()["calls"].get("chat_stream", 0) == 3, 30, what="3 workers on the LLM")

    latencies = [
        timed("POST", f"{server}/async-chat/tasks", {"question": "And my health?"}, token),
        timed("GET", tasks[0]["links"]["self"], token=token),
        timed("GET", f"{server}/async-chat/health"),
    ]
    assert [status for _, status, _, _ in latencies] == [202, 200, 200]
    assert max(seconds for seconds, *_ in latencies) < 1.0, latencies  # not waiting on the LLM (8 s)
    assert latencies[1][2]["status"] == "running"

    # Flood: the backlog fills to its limit, then submit refuses with 503 + Retry-After.
    answers = [call("POST", f"{server}/async-chat/tasks", {"question": "More?"}, token) for _ in range(BACKLOG + 3)]
    refused = [headers for status, body, headers in answers if status == 503]
    assert refused and all(h["Retry-After"] for h in refused)
    accepted = [t["id"] for t in tasks] + [latencies[0][2]["id"]] + [b["id"] for s, b, _ in answers if s == 202]
    assert len(accepted) <= 3 + BACKLOG  # the three running, then the backlog

    fake_llm_server.control(mode="ok")
    for task_id in accepted:
        url = f"{server}/async-chat/tasks/{task_id}"
        done = wait_until(lambda url=url: _terminal(url, token), 60, interval=0.3, what=f"task {task_id}")
        assert done["status"] == "succeeded", done


def _terminal(url: str, token: str) -> dict | None:
    _, body, _ = call("GET", url, token=token)
    return body if body["status"] not in ("queued", "running") else None
