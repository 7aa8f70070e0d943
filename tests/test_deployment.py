"""README "Scaling out": the processes run separately, exactly as documented, on a fresh database.

    manage.py migrate · manage.py collectstatic --noinput · manage.py load_poems FILE
    python -m fortune_project.webserver · manage.py qcluster · manage.py sweep_tasks --loop

`migrate` alone must prepare the database (the cache table too), and the web server on its own must
serve the static files: nothing here is done by `serve`.
"""

import json
import re
import urllib.request
from pathlib import Path

import pytest

from fortune_project import webserver
from tests.support.cluster import POEMS, worker_pids
from tests.support.http import call
from tests.support.processes import Process, base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.support.fake_llm"]

MAKE_USER = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"


def set_up(env: dict[str, str], poems: Path) -> None:
    for args in (["migrate"], ["collectstatic", "--noinput"], ["load_poems", str(poems)], ["shell", "-c", MAKE_USER]):
        done = run_manage(args, env, timeout=300)
        assert done.returncode == 0, f"manage.py {' '.join(args)}\n{done.stdout}\n{done.stderr}"


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def test_the_separate_processes_answer_a_submit_on_a_fresh_database(tmp_path, fake_llm_server):
    fake_llm_server.control(mode="ok", chunk_delay=0.01, reset=True)
    env = base_env(tmp_path, LLM_BASE_URL=fake_llm_server.base_url, LLM_MODEL="fake-llm", TASK_TIMEOUT="60")
    poems = tmp_path / "poems.jsonl"
    poems.write_text("\n".join(json.dumps(p) for p in POEMS))
    set_up(env, poems)

    port = free_port()
    web = Process(webserver.command("127.0.0.1", port), env, tmp_path / "web.log")
    workers = manage(["qcluster"], env, tmp_path / "qcluster.log")
    sweeper = manage(["sweep_tasks", "--loop"], env, tmp_path / "sweeper.log")
    try:
        wait_until(lambda: port_open(port), 60, what=f"the web server\n{web.log_path}")
        wait_until(lambda: len(worker_pids(env)) == 3, 60, interval=0.5, what="3 workers")
        site = f"http://127.0.0.1:{port}"
        assert get(f"{site}/health/ready/?format=json")[0] == 200

        _, body, _ = call("POST", f"{site}/api/v1/auth/token", {"username": "alice", "password": "alice-pw"})
        token = body["token"]
        status, body, _ = call("POST", f"{site}/api/v1/async-chat/tasks", {"question": "Will my shop do well?"}, token)
        assert status == 202, body
        done = wait_until(lambda: _terminal(body["links"]["self"], token), 60, interval=0.3, what="the task")
        assert done["status"] == "succeeded", done

        # The web server alone serves the admin's stylesheet, under its collected (hashed) name.
        _, _, login_page = get(f"{site}/admin/login/")
        stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', login_page)
        assert stylesheet, login_page
        status, content_type, css = get(site + stylesheet.group(1))
        assert (status, content_type.split(";")[0]) == (200, "text/css") and "#header" in css
    finally:
        for process in (sweeper, workers, web):
            process.stop()


def _terminal(url: str, token: str) -> dict | None:
    _, body, _ = call("GET", url, token=token)
    return body if body["status"] not in ("queued", "running") else None
