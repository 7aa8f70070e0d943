"""README command 1 in a subprocess: `manage.py serve` brings up web, 3 workers and the sweeper."""

import signal
import stat

import pytest

from tests.support.cluster import worker_pids
from tests.support.http import call
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = pytest.mark.slow

MAKE_USER = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"


def test_serve_started_from_another_directory_with_nothing_set_answers_a_question_and_stops_on_sigterm(tmp_path):
    """As bin/up on a fresh clone: no SECRET_KEY given, so serve makes one that web, workers and
    sweeper share (Django-Q2 signs each task with it) and later commands of the checkout reuse."""
    port = free_port()
    env = base_env(tmp_path)
    del env["SECRET_KEY"]
    server = manage(["serve", "--port", str(port)], env, tmp_path / "serve.log", cwd=tmp_path)
    try:
        wait_until(lambda: port_open(port), 90, what=f"the web server\n{server.log_path}")
        assert run_manage(["shell", "-c", MAKE_USER], env).returncode == 0
        base = f"http://127.0.0.1:{port}/api/v1"
        status, body, _ = call("POST", f"{base}/auth/token", {"username": "alice", "password": "alice-pw"})
        token = body["token"]
        status, body, _ = call("POST", f"{base}/async-chat/tasks", {"question": "Will my new shop do well?"}, token)
        assert status == 202
        url = body["links"]["self"]
        done = wait_until(lambda: _terminal(url, token), 60, interval=0.3, what="the task to finish")
        assert done["status"] == "succeeded", done
        assert len(worker_pids(env)) == 3
    finally:
        server.popen.send_signal(signal.SIGTERM)
        code = server.popen.wait(60)
        log = server.log()
        server.stop()
    assert code == 0, log
    assert not port_open(port)
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def _terminal(url: str, token: str) -> dict | None:
    _, body, _ = call("GET", url, token=token)
    return body if body["status"] not in ("queued", "running") else None
