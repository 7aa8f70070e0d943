"""WebSocket /ws/async-chat/tasks/{id}/: the owner watches the reading stream in; nobody else can."""

import asyncio
import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client

from chat import consumers, fanout, live
from chat.models import FortuneTask, Status
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from fortune_project.asgi import application
from monitoring.drills.fake_llm import READING
from tests.conftest import token_for
from tests.support.processes import free_port

pytest_plugins = ["tests.support.fake_llm", "tests.support.redis_layer"]  # the fake_llm and redis_layer fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def communicator(task_id, user=None, query: str = "") -> WebsocketCommunicator:
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        headers.append((b"cookie", session_cookie(user).encode()))
    path = f"/ws/async-chat/tasks/{task_id}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


async def watch(ws: WebsocketCommunicator, timeout: float = 10) -> tuple[list[dict], int]:
    """Everything the socket sends until it closes: (messages, close code)."""
    connected, _ = await ws.connect()
    assert connected
    messages: list[dict] = []
    end = time.monotonic() + timeout
    while True:
        event = await ws.receive_output(timeout=max(0.1, end - time.monotonic()))
        if event["type"] == "websocket.close":
            return messages, event.get("code", 1000)
        messages.append(json.loads(event["text"]))


def close_code(ws: WebsocketCommunicator) -> int:
    messages, code = async_to_sync(watch)(ws)
    assert messages == []
    return code


def in_thread(fn, *args) -> threading.Thread:
    def run() -> None:
        try:
            fn(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def task(alice, poem) -> FortuneTask:
    return submit_question(alice, Question("Will my new shop do well?", poem=poem))[0]


# --- who may watch ---------------------------------------------------------------------------------


def test_anonymous_is_closed_with_4401(task):
    assert close_code(communicator(task.id)) == 4401


def test_a_bad_token_is_closed_with_4401(task):
    assert close_code(communicator(task.id, query="token=not-a-token")) == 4401


def test_mallory_cannot_watch_alices_task(task, mallory):
    assert close_code(communicator(task.id, mallory)) == 4404


def test_mallorys_token_cannot_watch_alices_task(task, mallory):
    assert close_code(communicator(task.id, query=f"token={token_for(mallory)}")) == 4404


def test_an_unknown_task_is_closed_with_4404(alice):
    assert close_code(communicator("00000000-0000-0000-0000-000000000000", alice)) == 4404


def test_the_owner_may_watch_with_a_token(task, alice):
    FortuneTask.objects.filter(id=task.id).update(status=Status.CANCELLED, stage="done")
    messages, code = async_to_sync(watch)(communicator(task.id, query=f"token={token_for(alice)}"))
    assert [m["task"]["status"] for m in messages] == ["cancelled"]
    assert code == 1000


# --- what the owner sees ---------------------------------------------------------------------------


def test_a_finished_task_sends_one_update_as_get_and_closes(task, alice, as_alice):
    run_fortune_task(str(task.id))
    messages, code = async_to_sync(watch)(communicator(task.id, alice))
    assert code == 1000
    assert len(messages) == 1 and messages[0]["type"] == "task.update"
    assert messages[0]["task"] == as_alice.get(f"/api/v1/async-chat/tasks/{task.id}").json()


@pytest.mark.slow
def test_the_reading_streams_in_order_then_the_terminal_update_carries_the_result(task, alice, fake_llm):
    fake_llm.set_mode("ok", chunk_delay=0.12)

    ws = communicator(task.id, alice)

    async def scenario():
        watching = asyncio.ensure_future(watch(ws))
        await asyncio.sleep(0.3)
        worker = in_thread(run_fortune_task, str(task.id))
        messages, code = await watching
        await sync_to_async(worker.join)()
        return messages, code

    messages, code = async_to_sync(scenario)()
    tokens = [m["text"] for m in messages if m["type"] == "task.token"]
    updates = [m["task"] for m in messages if m["type"] == "task.update"]
    assert code == 1000
    assert len(tokens) >= 3, "the text arrived in several pieces"
    assert "".join(tokens) == READING
    assert messages[-1]["type"] == "task.update"
    assert updates[0]["status"] == "queued"
    assert ("running", "interpreting") in [(u["status"], u["stage"]) for u in updates]
    assert (updates[-1]["status"], updates[-1]["stage"]) == ("succeeded", "done")
    assert updates[-1]["result"]["interpretation"] == READING
    assert not [r for r in updates[-1]["result"]["degraded_reasons"] if r.startswith("llm")]


@pytest.mark.slow
def test_after_a_stall_the_terminal_update_replaces_the_streamed_text_with_the_fallback(task, alice, fake_llm):
    fake_llm.set_mode("stall", chunk_delay=0.05)

    ws = communicator(task.id, alice)

    async def scenario():
        watching = asyncio.ensure_future(watch(ws))
        await asyncio.sleep(0.3)
        worker = in_thread(run_fortune_task, str(task.id))
        result = await watching
        await sync_to_async(worker.join)()
        return result

    messages, _ = async_to_sync(scenario)()
    streamed = "".join(m["text"] for m in messages if m["type"] == "task.token")
    final = messages[-1]["task"]["result"]
    assert streamed and READING.startswith(streamed)
    assert "llm_timeout" in final["degraded_reasons"]
    assert final["interpretation"] != streamed


@pytest.mark.slow
def test_a_redis_hint_makes_the_consumer_poll_at_once(task, alice, redis_layer, monkeypatch):
    monkeypatch.setattr(consumers, "HINTED_POLL_INTERVAL", 30)  # only a hint can make it poll in time
    FortuneTask.objects.filter(id=task.id).update(status=Status.RUNNING, stage="interpreting")
    ws = communicator(task.id, alice)

    async def scenario():
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["task"]["stage"] == "interpreting"
        await sync_to_async(FortuneTask.objects.filter(id=task.id).update)(partial_text="The lantern")
        started = time.monotonic()
        live.notify_task(task.id)  # returns at once; the hint thread sends it
        message = await ws.receive_json_from(timeout=3)
        elapsed = time.monotonic() - started
        await ws.disconnect()
        return message, elapsed

    message, elapsed = async_to_sync(scenario)()
    assert message == {"type": "task.token", "text": "The lantern"}
    assert elapsed < 1


@pytest.mark.slow
def test_one_redis_hint_wakes_the_shared_poller_for_every_socket(task, alice, redis_layer, monkeypatch):
    monkeypatch.setattr(consumers, "HINTED_POLL_INTERVAL", 30)  # only a hint can make it poll in time
    FortuneTask.objects.filter(id=task.id).update(status=Status.RUNNING, stage="interpreting")
    sockets = [communicator(task.id, alice) for _ in range(3)]

    async def scenario():
        for ws in sockets:
            assert (await ws.connect())[0]
            assert (await ws.receive_json_from())["task"]["stage"] == "interpreting"
        pollers = len(fanout.hub().feeds)
        await sync_to_async(FortuneTask.objects.filter(id=task.id).update)(partial_text="The lantern")
        live.notify_task(task.id)
        messages = [await ws.receive_json_from(timeout=5) for ws in sockets]
        for ws in sockets:
            await ws.disconnect()
        return pollers, messages

    pollers, messages = async_to_sync(scenario)()
    assert pollers == 1
    assert messages == [{"type": "task.token", "text": "The lantern"}] * 3


def test_a_hint_never_blocks_the_reading_even_with_redis_down(settings):
    hosts = [{"address": f"redis://127.0.0.1:{free_port()}/0", "socket_timeout": 10}]
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": hosts}}
    }
    started = time.monotonic()
    for _ in range(200):
        live.notify_task("00000000-0000-0000-0000-000000000000")
    assert time.monotonic() - started < 0.1
