"""Clients cannot hang the backend through its WebSockets (issue 11): any frame closes 1003, every
ending stops the socket's work, a user's sockets are capped, and no path answers 500."""

import logging

import pytest
from asgiref.sync import async_to_sync

from chat.consumers import TaskConsumer
from chat.models import FortuneTask, Status
from chat.sockets import OPEN_SOCKETS
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

pytestmark = pytest.mark.django_db(transaction=True)  # the consumers read through their own threads


def nothing_left_running(user) -> bool:
    """No feed registered or running on this loop, and no socket slot still held by `user`."""
    return not feeds() and not feed_tasks() and OPEN_SOCKETS[user.pk] == 0


# --- any frame closes 1003 -------------------------------------------------------------------------

FRAMES = {
    "garbage": {"text_data": "garbage"},
    "binary": {"bytes_data": b"\x00\xffgarbage"},
    "invalid json": {"text_data": '{"type": '},
    "valid json": {"text_data": '{"type": "task.cancel"}'},
    "huge": {"text_data": "x" * 2_000_000},
}


@pytest.mark.parametrize("frame", FRAMES.values(), ids=FRAMES.keys())
def test_any_frame_on_a_task_socket_closes_it_with_1003_and_stops_its_poller(task, alice, alices_cookie, frame):
    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        assert (await next_json(ws))["type"] == "task.update"
        await ws.send_to(**frame)
        code = await close_code(ws)
        return code, await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == (1003, True)


def test_any_frame_on_the_monitoring_socket_closes_it_with_1003_and_stops_the_builder(bob, bobs_cookie):
    async def scenario():
        ws = await opened(socket_to("/ws/monitoring/", bobs_cookie))
        assert (await next_json(ws))["type"] == "snapshot"
        await ws.send_to(text_data="garbage")
        code = await close_code(ws)
        return code, await settled(lambda: nothing_left_running(bob))

    assert async_to_sync(scenario)() == (1003, True)


def test_300_garbage_frames_on_one_socket_log_one_line_and_no_traceback(task, alice, alices_cookie, caplog):
    caplog.set_level(logging.INFO)

    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        for _ in range(300):
            await ws.send_to(text_data="garbage")
        return await close_code(ws), await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == (1003, True)
    about_frames = [r for r in caplog.records if "1003" in r.getMessage()]
    assert len(about_frames) == 1
    assert [r for r in caplog.records if r.exc_info] == []


# --- every ending stops the socket's work ----------------------------------------------------------


def test_a_socket_whose_handler_raised_closes_1011_and_leaves_no_background_task(
    task, alice, alices_cookie, monkeypatch
):
    async def broken_handler(self, message):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(TaskConsumer, "websocket_receive", broken_handler)

    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(ws)
        pollers = feed_tasks()
        await ws.send_to(text_data="anything")
        code = await close_code(ws)
        stopped = await settled(lambda: all(t.done() for t in pollers) and nothing_left_running(alice))
        return len(pollers), code, stopped

    assert async_to_sync(scenario)() == (1, 1011, True)


def test_a_feed_that_fails_closes_its_sockets_with_1011_and_stops(task, alice, alices_cookie, monkeypatch):
    from chat import consumers

    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(ws)
        monkeypatch.setattr(consumers, "serialize", lambda task: 1 / 0)
        await sync_update(task.id, stage="retrieving", status=Status.RUNNING)
        code = await close_code(ws)
        return code, await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == (1011, True)


def test_a_socket_the_server_cancels_gives_back_its_poller_and_its_slot(task, alice, alices_cookie):
    """What daphne does to every socket on shutdown, or to one that takes too long to close."""

    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(ws)
        ws.future.cancel()
        return await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)()


def test_a_client_that_closes_gives_back_its_poller_and_its_slot(task, alice, alices_cookie):
    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(ws)
        running = bool(feeds()) and OPEN_SOCKETS[alice.pk] == 1
        await ws.disconnect()
        return running, await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == (True, True)


def test_a_terminal_task_closes_the_socket_and_gives_back_its_slot(task, alice, alices_cookie):
    async def scenario():
        ws = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(ws)
        await sync_update(task.id, status=Status.CANCELLED, stage="done")
        last = await next_json(ws)
        return last["task"]["status"], await close_code(ws), await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == ("cancelled", 1000, True)


# --- the per-user cap ------------------------------------------------------------------------------


def test_alices_socket_past_the_cap_closes_with_4429(task, alice, alices_cookie, settings):
    settings.WS_MAX_SOCKETS_PER_USER = 3

    async def scenario():
        sockets = [await opened(socket_to(task_path(task.id), alices_cookie)) for _ in range(3)]
        for ws in sockets:
            await next_json(ws)
        refused = await close_code(await opened(socket_to(task_path(task.id), alices_cookie)))
        await sockets[0].disconnect()
        await settled(lambda: OPEN_SOCKETS[alice.pk] == 2)
        again = await opened(socket_to(task_path(task.id), alices_cookie))
        admitted = (await next_json(again))["type"]
        for ws in [*sockets[1:], again]:
            await ws.disconnect()
        return refused, admitted, await settled(lambda: nothing_left_running(alice))

    assert async_to_sync(scenario)() == (4429, "task.update", True)


def test_alices_sockets_do_not_count_against_bob(task, alice, bob, alices_cookie, bobs_cookie, settings):
    settings.WS_MAX_SOCKETS_PER_USER = 1

    async def scenario():
        alices = await opened(socket_to(task_path(task.id), alices_cookie))
        await next_json(alices)
        bobs = await opened(socket_to("/ws/monitoring/", bobs_cookie))
        seen = (await next_json(bobs))["type"]
        second_bob = await close_code(await opened(socket_to("/ws/monitoring/", bobs_cookie)))
        await alices.disconnect()
        await bobs.disconnect()
        return seen, second_bob

    assert async_to_sync(scenario)() == ("snapshot", 4429)


def test_a_refused_socket_holds_no_slot(task, mallory):
    """mallory's sockets on alice's task are refused, and she can keep trying without using up her cap."""
    cookie = session_cookie(mallory)

    async def scenario():
        codes = [await close_code(await opened(socket_to(task_path(task.id), cookie))) for _ in range(25)]
        return set(codes), OPEN_SOCKETS[mallory.pk]

    assert async_to_sync(scenario)() == ({4404}, 0)


# --- bad ids and unknown paths ---------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["zzz", "00000000-0000-0000-0000", "%20", "1" * 500])
def test_a_malformed_task_id_closes_with_4404(alice, alices_cookie, bad_id):
    async def scenario():
        return await close_code(await opened(socket_to(task_path(bad_id), alices_cookie)))

    assert async_to_sync(scenario)() == 4404


def test_a_malformed_task_id_still_asks_for_credentials_first():
    async def scenario():
        return await close_code(await opened(socket_to(task_path("zzz"))))

    assert async_to_sync(scenario)() == 4401


def test_a_task_id_in_capitals_is_the_same_task(task, alice, alices_cookie):
    async def scenario():
        ws = await opened(socket_to(task_path(str(task.id).upper()), alices_cookie))
        message = await next_json(ws)
        await ws.disconnect()
        return message["task"]["id"]

    assert async_to_sync(scenario)() == str(task.id)


@pytest.mark.parametrize(
    "path", ["/ws/nothing-here/", "/ws/monitoring/extra/", "/ws/async-chat/tasks/", "/api/v1/async-chat/tasks", "/"]
)
def test_an_unknown_path_closes_with_4404_instead_of_an_error(path, alice, alices_cookie):
    async def scenario():
        return await close_code(await opened(socket_to(path, alices_cookie)))

    assert async_to_sync(scenario)() == 4404


async def sync_update(task_id, **fields) -> None:
    from channels.db import database_sync_to_async

    await database_sync_to_async(FortuneTask.objects.filter(id=task_id).update)(**fields)
