"""WebSocket /ws/async-chat/tasks/{id}/: one task's progress for its owner.

Sends {"type": "task.update", "task": {...as GET}} on connect and on every status or stage
change, {"type": "task.token", "text": delta} as `partial_text` grows, and closes after the
terminal update. A client's text is the last update's `task.partial_text` plus the tokens
since; {"type": "task.reset"} (then a full update) says the text sent so far was replaced
(LLM failover). The terminal update's `result.interpretation` is the final word (a fallback
reading replaces whatever was streamed).

Each socket checks its user and ownership once, at connect; the polling is done by one
`TaskFeed` per task for all of that task's sockets (chat/fanout.py). It polls the task row
(works in every mode, shared/NOTES.md); with Redis, hints from the worker (chat/live.py) make it
poll at once. Close codes: 4401 not authenticated, 4404 no such task of yours (another user's
task is as absent as a missing one, as in the API; a malformed id too), 4429 too many sockets,
1003 the client sent a frame.
"""

import logging
import uuid
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from chat import lifecycle
from chat.fanout import Feed
from chat.live import task_group
from chat.models import FortuneTask
from chat.serializers import TaskSerializer
from chat.sockets import NOT_AUTHENTICATED, NOT_FOUND, TOO_MANY_SOCKETS, PollingConsumer, scope_user

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2  # embedded mode: the only way to see a worker's changes
HINTED_POLL_INTERVAL = 0.5  # with Redis hints, polling covers dropped hints and unhinted status changes


def task_key(raw: object) -> str | None:
    """The task id from the URL in its one canonical spelling, or None when it is no UUID."""
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        return None


def _current(task: FortuneTask | None) -> FortuneTask | None:
    if task and not task.is_terminal and timezone.now() > task.deadline + timedelta(seconds=settings.TASK_GRACE):
        lifecycle.expire_task(task.id)  # as the API does: nobody may watch a task stuck past its deadline
        task.refresh_from_db()
    return task


def load_task(task_id: str, user) -> FortuneTask | None:
    """The user's own task, checked once per socket at connect."""
    return _current(FortuneTask.objects.filter(id=task_id, user=user).first())


def read_task(task_id: str) -> FortuneTask | None:
    """The task for its feed, whose every socket already proved ownership."""
    return _current(FortuneTask.objects.filter(id=task_id).first())


def feed_key(task_id: str) -> str:
    return f"task:{task_id}"


def serialize(task: FortuneTask) -> dict:
    return TaskSerializer(task).data


class TaskFeed(Feed):
    """One poller per task id, whatever the number of sockets watching it."""

    def __init__(self, task_id: str) -> None:
        super().__init__(feed_key(task_id), group=task_group(task_id))
        self.task_id = task_id
        self.sent_state: tuple[str, str] | None = None
        self.sent_text = ""

    def interval(self) -> float:
        return HINTED_POLL_INTERVAL if self.hinted else POLL_INTERVAL

    def changes(self, task: FortuneTask) -> tuple[str, bool]:
        """(new text since the last poll, whether a full update is due) for the regulars."""
        text, state = task.partial_text, (task.status, task.stage)
        grew = text.startswith(self.sent_text)
        token = text[len(self.sent_text) :] if grew else ""
        full = state != self.sent_state or not grew  # a shorter or different text needs a full snapshot
        self.sent_state, self.sent_text = state, text
        return token, full

    async def poll_once(self) -> bool:
        try:
            task = await database_sync_to_async(read_task)(self.task_id)
        except OperationalError as exc:  # SQLite busy under a writer: the next poll will do
            log.info("task feed %s skipped a poll: %s", self.task_id, exc)
            return True
        if task is None or task.is_terminal:
            self.detach()  # a socket arriving from now on gets a feed of its own, which tells it
        if task is None:  # deleted under us
            await self.close_all(NOT_FOUND)
            return False
        await self.tell(task)
        if task.is_terminal:
            await self.close_all()
            return False
        return True

    async def tell(self, task: FortuneTask) -> None:
        """Newcomers get the full update; regulars the new text and, on a change, the update."""
        newcomers, regulars = self.roll_call()
        replaced = bool(self.sent_text) and not task.partial_text.startswith(self.sent_text)
        token, full = self.changes(task)
        if replaced:  # LLM failover withdrew the text streamed so far: the update that follows restarts it
            await self.publish({"type": "task.reset"}, regulars)
        if token:
            await self.publish({"type": "task.token", "text": token}, regulars)
        to = [*regulars, *newcomers] if full else newcomers
        if to:
            data = await database_sync_to_async(serialize)(task)
            await self.publish({"type": "task.update", "task": data}, to)


class TaskConsumer(PollingConsumer):
    async def connect(self) -> None:
        # Accept first: a close code only reaches the client after the handshake.
        await self.accept()
        code = await self.refusal()
        if code is not None:
            await self.end(code)
            return
        task_id = self.task_id
        self.watch(feed_key(task_id), lambda: TaskFeed(task_id))

    async def refusal(self) -> int | None:
        """Why this socket may not watch, if it may not; the cheap checks first."""
        user = await database_sync_to_async(scope_user)(self.scope)
        if user is None:
            return NOT_AUTHENTICATED
        task_id = task_key(self.scope["url_route"]["kwargs"]["task_id"])
        if task_id is None:
            return NOT_FOUND
        if not self.admit(user):
            return TOO_MANY_SOCKETS
        if await database_sync_to_async(load_task)(task_id, user) is None:
            return NOT_FOUND
        self.task_id = task_id
        return None
