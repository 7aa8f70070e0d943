"""Work shared by many sockets is done once per process (chat/fanout.py): one poller per task,
one snapshot builder for the operations page, each stopped when its last socket leaves."""

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from chat import consumers
from chat.models import FortuneTask, Status
from fortune_project.resilience.breakers import get_breaker
from monitoring import live
from tests.support.sockets import (
    close_code,
    feed_tasks,
    feeds,
    next_json,
    opened,
    session_cookie,
    settled,
    socket_to,
    task_path,
)

pytest_plugins = ["tests.support.sockets"]  # task, alices_cookie, bobs_cookie

pytestmark = pytest.mark.django_db(transaction=True)  # the feeds read through their own threads

MANY = 60  # enough to see sharing; bench/sockets.py measures 400


@pytest.fixture
def no_cap(settings):
    settings.WS_MAX_SOCKETS_PER_USER = 0


async def update(task_id, **fields) -> None:
    await database_sync_to_async(FortuneTask.objects.filter(id=task_id).update)(**fields)


async def open_many(path: str, cookie: str, count: int) -> list:
    """`count` sockets, each past its first message."""
    sockets = [await opened(socket_to(path, cookie)) for _ in range(count)]
    for ws in sockets:
        await next_json(ws, timeout=10)
    return sockets


async def everyone_gets(sockets: list, within: float) -> list[dict]:
    """The next message on every socket, all of them within `within` seconds."""
    return list(await asyncio.gather(*(next_json(ws, timeout=within) for ws in sockets)))


def counting(monkeypatch, module, name: str) -> list[int]:
    """Count the calls to `module.name` (the feeds look it up at each poll)."""
    calls = [0]
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


# --- task sockets ----------------------------------------------------------------------------------


def test_many_sockets_on_alices_task_share_one_poller_and_all_get_every_change(task, alices_cookie, no_cap):
    async def scenario():
        sockets = await open_many(task_path(task.id), alices_cookie, MANY)
        registry, pollers = list(feeds()), len([t for t in feed_tasks() if t.get_name() == f"feed task:{task.id}"])
        await update(task.id, status=Status.RUNNING, stage="interpreting")
        started = time.monotonic()
        updates = await everyone_gets(sockets, within=5)
        await update(task.id, partial_text="The lantern")
        tokens = await everyone_gets(sockets, within=5)
        took = time.monotonic() - started
        for ws in sockets:
            await ws.disconnect()
        return registry, pollers, updates, tokens, took

    registry, pollers, updates, tokens, took = async_to_sync(scenario)()
    assert registry == [f"task:{task.id}"] and pollers == 1
    assert {(m["type"], m["task"]["stage"]) for m in updates} == {("task.update", "interpreting")}
    assert tokens == [{"type": "task.token", "text": "The lantern"}] * MANY
    assert took < 10  # within a second or two on a quiet machine (bench/sockets.py)


def test_many_sockets_cost_one_read_of_the_task_per_interval(task, alices_cookie, no_cap, monkeypatch):
    reads = counting(monkeypatch, consumers, "read_task")

    async def scenario():
        sockets = await open_many(task_path(task.id), alices_cookie, MANY)
        before = reads[0]
        await asyncio.sleep(1.0)
        during = reads[0] - before
        for ws in sockets:
            await ws.disconnect()
        return during

    # one poller every POLL_INTERVAL (0.2 s): about 5 reads in that second, not 5 x MANY
    assert async_to_sync(scenario)() <= 15


def test_the_poller_stops_when_the_last_socket_leaves(task, alices_cookie):
    async def scenario():
        sockets = await open_many(task_path(task.id), alices_cookie, 3)
        [poller] = feed_tasks()
        await sockets[0].disconnect()
        await sockets[1].disconnect()
        await asyncio.sleep(0.3)
        still = not poller.done() and list(feeds()) == [f"task:{task.id}"]
        await sockets[2].disconnect()
        gone = await settled(lambda: poller.done() and not feeds() and not feed_tasks())
        return still, gone

    assert async_to_sync(scenario)() == (True, True)


def test_a_socket_joining_late_gets_the_full_update_then_the_same_tokens(task, alices_cookie):
    async def scenario():
        early = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(early)
        await update(task.id, status=Status.RUNNING, stage="interpreting", partial_text="The lan")
        await next_json(early)  # the token "The lan"
        await next_json(early)  # the update for the new stage
        late = await opened(socket_to(task_path(task.id), alices_cookie))
        first = await next_json(late)
        await update(task.id, partial_text="The lantern")
        both = [await next_json(early), await next_json(late)]
        await early.disconnect()
        await late.disconnect()
        return first, both

    first, both = async_to_sync(scenario)()
    assert first["type"] == "task.update"
    assert (first["task"]["stage"], first["task"]["partial_text"]) == ("interpreting", "The lan")
    assert both == [{"type": "task.token", "text": "tern"}] * 2


def test_mallory_cannot_join_the_poller_of_alices_task(task, alices_cookie, mallory):
    mallorys_cookie = session_cookie(mallory)

    async def scenario():
        alices = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(alices)
        refused = await close_code(await opened(socket_to(task_path(task.id), mallorys_cookie)))
        watching = len(feeds()[f"task:{task.id}"].subscribers)
        await alices.disconnect()
        return refused, watching

    assert async_to_sync(scenario)() == (4404, 1)


def test_every_socket_gets_the_terminal_update_then_closes(task, alices_cookie):
    async def scenario():
        sockets = await open_many(task_path(task.id), alices_cookie, 3)
        await update(task.id, status=Status.CANCELLED, stage="done")
        last = await everyone_gets(sockets, within=5)
        codes = [await close_code(ws) for ws in sockets]
        return [m["task"]["status"] for m in last], codes, await settled(lambda: not feeds() and not feed_tasks())

    assert async_to_sync(scenario)() == (["cancelled"] * 3, [1000] * 3, True)


# --- the operations page ---------------------------------------------------------------------------


def test_bobs_monitoring_sockets_share_one_snapshot_builder(bob, bobs_cookie, no_cap, monkeypatch):
    builds = counting(monkeypatch, live, "live_snapshot")

    def force_open():
        get_breaker("llm").force_open(who="bob (test)")

    async def scenario():
        sockets = await open_many("/ws/monitoring/", bobs_cookie, 10)
        registry, builders = list(feeds()), len(feed_tasks())
        before = builds[0]
        await asyncio.sleep(1.0)
        during = builds[0] - before
        await database_sync_to_async(force_open)()
        seen = await everyone_gets(sockets, within=5)
        for ws in sockets:
            await ws.disconnect()
        return registry, builders, during, seen, await settled(lambda: not feeds() and not feed_tasks())

    registry, builders, during, seen, stopped = async_to_sync(scenario)()
    assert registry == [live.FEED_KEY] and builders == 1
    assert during <= 8  # one build per OPS_LIVE_POLL (0.5 s), not one per socket
    assert all(any(b["state"] == "forced_open" for b in m["snapshot"]["breakers"]) for m in seen)
    assert stopped


def test_a_late_monitoring_socket_gets_a_snapshot_at_once(bob, bobs_cookie, settings):
    settings.OPS_LIVE_POLL = 30  # only the newcomer's wake-up can make the builder build in time

    async def scenario():
        first = await opened(socket_to("/ws/monitoring/", bobs_cookie))
        await next_json(first)
        late = await opened(socket_to("/ws/monitoring/", bobs_cookie))
        message = await next_json(late, timeout=5)
        await first.disconnect()
        await late.disconnect()
        return message["type"]

    assert async_to_sync(scenario)() == "snapshot"
