"""WebSocket /ws/monitoring/ through the project's ASGI application (origin check, auth, routing)."""

import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from chat import workers
from chat.signals import notify_live
from fortune_project.asgi import application
from fortune_project.resilience.breakers import get_breaker
from monitoring.live import fingerprint
from tests.conftest import token_for

ORIGIN = (b"origin", b"http://testserver")
pytestmark = pytest.mark.django_db(transaction=True)  # the consumer reads through its own sync_to_async calls
pytest_plugins = ["tests.support.redis_layer"]


def socket_for(query: str = "", cookie: str | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN] + ([(b"cookie", cookie.encode())] if cookie else [])
    return WebsocketCommunicator(application, f"/ws/monitoring/{query}", headers=headers)


async def first_message(socket: WebsocketCommunicator) -> dict:
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return await socket.receive_output(timeout=5)


async def snapshot_where(socket: WebsocketCommunicator, predicate, within: float) -> float:
    """Seconds until a snapshot matching `predicate` arrives; fails after `within` seconds."""
    started = time.monotonic()
    while (left := within - (time.monotonic() - started)) > 0:
        message = await socket.receive_json_from(timeout=left)
        if predicate(message["snapshot"]):
            return time.monotonic() - started
    raise AssertionError(f"no matching snapshot within {within} s")


def test_staff_gets_the_full_snapshot_on_connect(bob):
    async def scenario():
        socket = socket_for(f"?token={await sync_to_async(token_for)(bob)}")
        message = await first_message(socket)
        await socket.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "websocket.send"
    body = json.loads(message["text"])
    assert body["type"] == "snapshot"
    assert set(body["snapshot"]) >= {"workers", "queue", "tasks", "breakers", "alerts", "system"}


def test_a_staff_session_cookie_works_too(bob):
    browser = Client()
    browser.force_login(bob)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    async def scenario():
        socket = socket_for(cookie=cookie)
        message = await first_message(socket)
        await socket.disconnect()
        return message

    assert '"type": "snapshot"' in async_to_sync(scenario)()["text"]


@pytest.mark.parametrize("who", ["alice", "anonymous"])
def test_non_staff_and_anonymous_are_refused_with_4403(request, who):
    query = "" if who == "anonymous" else f"?token={token_for(request.getfixturevalue(who))}"

    async def scenario():
        return await first_message(socket_for(query))

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}


def test_a_breaker_forced_open_elsewhere_reaches_the_socket_within_a_second(bob):
    def force_open():
        get_breaker("llm").force_open(who="mallory (test)")

    def llm_is_open(snap: dict) -> bool:
        return any(b["name"] == "llm" and b["state"] == "forced_open" for b in snap["breakers"])

    async def scenario():
        socket = socket_for(f"?token={await sync_to_async(token_for)(bob)}")
        await first_message(socket)
        await sync_to_async(force_open)()
        took = await snapshot_where(socket, llm_is_open, within=1.0)
        await socket.disconnect()
        return took

    assert async_to_sync(scenario)() < 1.0


def test_a_worker_going_busy_reaches_the_socket_within_a_second(bob, one_cluster):
    async def scenario():
        socket = socket_for(f"?token={await sync_to_async(token_for)(bob)}")
        await first_message(socket)
        await sync_to_async(workers.record)("busy", task="t-1", pid=12, host=one_cluster.host)
        took = await snapshot_where(socket, lambda s: s["workers"]["busy"] == 1, within=1.0)
        await socket.disconnect()
        return took

    assert async_to_sync(scenario)() < 1.0


@pytest.mark.slow
def test_one_redis_hint_wakes_the_shared_snapshot_builder_for_every_socket(bob, redis_layer, settings):
    settings.OPS_LIVE_POLL = 30  # only a hint can make the builder look again in time

    def force_open_and_hint():
        get_breaker("llm").force_open(who="bob (test)")
        notify_live()

    def llm_is_open(snap: dict) -> bool:
        return any(b["name"] == "llm" and b["state"] == "forced_open" for b in snap["breakers"])

    async def scenario():
        query = f"?token={await sync_to_async(token_for)(bob)}"
        sockets = [socket_for(query) for _ in range(3)]
        for socket in sockets:
            await first_message(socket)
        await sync_to_async(force_open_and_hint)()
        took = [await snapshot_where(socket, llm_is_open, within=5.0) for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return took

    assert len(async_to_sync(scenario)()) == 3


def test_the_change_detection_ignores_the_mere_passing_of_time():
    one = {"generated_at": "a", "queue": {"queued": 1, "oldest_queued_age_ms": 5}, "workers": {"workers": []}}
    two = {"generated_at": "b", "queue": {"queued": 1, "oldest_queued_age_ms": 900}, "workers": {"workers": []}}
    assert fingerprint(one) == fingerprint(two)
    assert fingerprint(one) != fingerprint({**one, "queue": {"queued": 2}})
