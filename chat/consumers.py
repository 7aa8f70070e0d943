"""WebSocket /ws/async-chat/tasks/{id}/: one task's progress for its owner.

Sends {"type": "task.update", "task": {...as GET}} on connect and on every status or stage
change, {"type": "task.token", "text": delta} as `partial_text` grows, and closes after the
terminal update. A client's text is the last update's `task.partial_text` plus the tokens
since; the terminal update's `result.interpretation` is the final word (a fallback reading
replaces whatever was streamed).

The consumer polls the task row (works in every mode, shared/NOTES.md); with Redis, hints from
the worker (chat/live.py) make it poll at once. Close codes: 4401 not authenticated, 4404 no
such task of yours (another user's task is as absent as a missing one, as in the API).
"""

import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from chat import lifecycle
from chat.live import task_group
from chat.models import FortuneTask
from chat.serializers import TaskSerializer
from chat.sockets import PollingConsumer, scope_user

log = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
NOT_FOUND = 4404
POLL_INTERVAL = 0.2  # embedded mode: the only way to see a worker's changes
HINTED_POLL_INTERVAL = 0.5  # with Redis hints, polling covers dropped hints and unhinted status changes


def load_task(task_id: str, user) -> FortuneTask | None:
    task = FortuneTask.objects.filter(id=task_id, user=user).first()
    if task and not task.is_terminal and timezone.now() > task.deadline + timedelta(seconds=settings.TASK_GRACE):
        lifecycle.expire_task(task.id)  # as the API does: nobody may watch a task stuck past its deadline
        task.refresh_from_db()
    return task


def serialize(task: FortuneTask) -> dict:
    return TaskSerializer(task).data


class TaskConsumer(PollingConsumer):
    async def connect(self) -> None:
        # Accept first: a close code only reaches the client after the handshake.
        await self.accept()
        self.task_id = str(self.scope["url_route"]["kwargs"]["task_id"])
        self.user = await database_sync_to_async(scope_user)(self.scope)
        if self.user is None:
            await self.close(code=NOT_AUTHENTICATED)
            return
        if await database_sync_to_async(load_task)(self.task_id, self.user) is None:
            await self.close(code=NOT_FOUND)
            return
        await self.start_watching(task_group(self.task_id))

    task_changed = PollingConsumer.wake_up

    async def poll_forever(self) -> None:
        interval = HINTED_POLL_INTERVAL if self.hinted else POLL_INTERVAL
        sent_state, sent_text = None, ""
        while True:
            try:
                task = await database_sync_to_async(load_task)(self.task_id, self.user)
            except OperationalError as exc:  # SQLite busy under a writer: the next poll will do
                log.info("task socket for %s skipped a poll: %s", self.task_id, exc)
                await self.sleep(interval)
                continue
            if task is None:  # deleted under us
                await self.close(code=NOT_FOUND)
                return
            text, state = task.partial_text, (task.status, task.stage)
            grew = text.startswith(sent_text)
            if grew and len(text) > len(sent_text):
                await self.send_json({"type": "task.token", "text": text[len(sent_text) :]})
                sent_text = text
            if state != sent_state or not grew:  # a shorter or different text needs a full snapshot
                data = await database_sync_to_async(serialize)(task)
                await self.send_json({"type": "task.update", "task": data})
                sent_state, sent_text = state, text
            if task.is_terminal:
                await self.close()
                return
            await self.sleep(interval)
