"""WebSocket helpers over the project's ASGI application (origin check, auth, routing included)."""

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from chat import fanout
from chat.models import FortuneTask
from chat.submission import Question, submit_question
from fortune_project.asgi import application

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> str:
    """A logged-in session for `user`, as a Cookie header value (call it outside the event loop)."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def socket_to(path: str, cookie: str | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN] + ([(b"cookie", cookie.encode())] if cookie else [])
    return WebsocketCommunicator(application, path, headers=headers)


def task_path(task_id: object) -> str:
    return f"/ws/async-chat/tasks/{task_id}/"


async def opened(ws: WebsocketCommunicator) -> WebsocketCommunicator:
    connected, _ = await ws.connect(timeout=10)
    assert connected
    return ws


async def next_json(ws: WebsocketCommunicator, timeout: float = 5) -> dict:
    return json.loads(await ws.receive_from(timeout=timeout))


async def close_code(ws: WebsocketCommunicator, timeout: float = 5) -> int:
    """The code of the close that comes next, skipping any messages before it."""
    while True:
        event = await ws.receive_output(timeout=timeout)
        if event["type"] == "websocket.close":
            return event.get("code", 1000)


def feed_tasks() -> list[asyncio.Task]:
    """The feeds' background tasks still running on this loop (pollers and hint readers)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("feed ") and not t.done()]


async def settled(predicate: Callable[[], object], within: float = 5) -> bool:
    """Wait, yielding to the loop, until `predicate()` is true; False if it never was."""
    end = time.monotonic() + within
    while not predicate():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def feeds() -> dict[str, fanout.Feed]:
    return dict(fanout.hub().feeds)


# Fixtures of the socket tests (their modules list this one in pytest_plugins).


@pytest.fixture
def task(alice, poem) -> FortuneTask:
    return submit_question(alice, Question("Will my new shop do well?", poem=poem))[0]


@pytest.fixture
def alices_cookie(alice) -> str:
    return session_cookie(alice)


@pytest.fixture
def bobs_cookie(bob) -> str:
    return session_cookie(bob)
