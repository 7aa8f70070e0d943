"""Through the real web server (fortune_project/webserver.py), not the channels test communicator:
the close codes reach the client (a server may refuse codes the communicator lets through) and
nothing answers 500."""

import asyncio

import pytest

from fortune_project import webserver
from tests.support.processes import Process, base_env, free_port, port_open, run_manage, wait_until
from tests.support.wsclient import connect

pytestmark = pytest.mark.slow

SETUP = """
from django.contrib.auth.models import User
from django.test import Client
from chat.submission import Question, submit_question
from rag.models import TOPICS, Poem, Temple
alice = User.objects.create_user("alice", password="alice-pw")
temple = Temple.objects.create(slug="jade-harbor", name="Jade Harbor Temple")
poem = Poem.objects.create(temple=temple, number=1, title="t", rank="r", verse="v", meaning="m",
                           advice={t: "a" for t in TOPICS})
task = submit_question(alice, Question("Will my new shop do well?", poem=poem))[0]
client = Client()
client.force_login(alice)
print(task.id, client.cookies["sessionid"].value)
"""


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """The web server alone on a fresh database holding alice, her session and one queued task."""
    tmp_path = tmp_path_factory.mktemp("web")
    env = base_env(
        tmp_path, SECRET_KEY="test-only-" + "k" * 50, WS_MAX_SOCKETS_PER_USER="0", WS_MAX_MESSAGE_BYTES="1024"
    )
    assert run_manage(["migrate", "-v0"], env).returncode == 0
    made = run_manage(["shell", "-c", SETUP], env)
    assert made.returncode == 0, made.stderr
    task_id, cookie = made.stdout.split()[-2:]
    port = free_port()
    server = Process(webserver.command("127.0.0.1", port), env, tmp_path / "web.log")
    try:
        wait_until(lambda: port_open(port), 60, what=f"the web server\n{server.log_path}")
        yield port, task_id, cookie, server
    finally:
        server.stop()


def test_garbage_frames_close_every_socket_with_1003_and_log_one_line_each(web):
    port, task_id, cookie, server = web

    async def scenario():
        sockets = [await connect(port, f"/ws/async-chat/tasks/{task_id}/", cookie) for _ in range(20)]
        for ws in sockets:
            await ws.frame()  # the first task.update
            for _ in range(3):
                ws.send_text("garbage")
        codes = await asyncio.wait_for(asyncio.gather(*(ws.close_code() for ws in sockets)), 30)
        for ws in sockets:
            ws.drop()
        return codes

    assert asyncio.run(scenario()) == [1003] * 20
    wait_until(lambda: server.log().count("with 1003") >= 20, 10, what="the log lines")
    assert server.log().count("with 1003") == 20
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("path", ["/ws/async-chat/tasks/zzz/", "/ws/nothing-here/", "/ws/monitoring/extra/"])
def test_a_malformed_id_or_an_unknown_path_closes_4404_instead_of_answering_500(web, path):
    port, _, cookie, server = web

    async def scenario():
        ws = await connect(port, path, cookie)
        code = await asyncio.wait_for(ws.close_code(), 10) if ws.status == 101 else None
        ws.drop()
        return ws.status, code

    assert asyncio.run(scenario()) == (101, 4404)
    assert "Traceback" not in server.log()


def test_a_message_over_the_size_limit_closes_the_socket_with_1009_before_the_app_reads_it(web):
    port, task_id, cookie, server = web

    async def scenario():
        ws = await connect(port, f"/ws/async-chat/tasks/{task_id}/", cookie)
        await ws.frame()  # the first task.update
        ws.send_text("x" * 5000)  # WS_MAX_MESSAGE_BYTES is 1024 here
        code = await asyncio.wait_for(ws.close_code(), 10)
        ws.drop()
        return code

    assert asyncio.run(scenario()) == 1009
    assert "Traceback" not in server.log()
