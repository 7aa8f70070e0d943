"""Getting a task's progress to its WebSocket (chat/consumers.py).

The task row is the truth: the worker saves the streamed text as `partial_text` (throttled
here), and the socket consumer polls the row and sends what changed. With Redis the worker
also sends a hint to the task's group so the consumer polls at once; the in-memory layer
cannot cross processes (shared/NOTES.md), so in embedded mode there are no hints and the
consumer's own polling carries everything. A lost hint costs at most one poll interval.
"""

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

SAVE_INTERVAL = 0.25  # with llm.TICK = 0.25, unsaved text waits at most ~0.5 s


def task_group(task_id: object) -> str:
    return f"fortune-task-{task_id}"


def hints_enabled() -> bool:
    """Only a cross-process layer (Redis) can carry hints from a worker to a web process."""
    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


def notify_task(task_id: object) -> None:
    """Wake the task's socket consumers now, without waiting: a hint that cannot be sent (Redis
    slow or down) must not hold up the reading, and a dropped hint only delays a poll."""
    notify_group(task_group(task_id), "task.changed")


def notify_group(group: str, message_type: str) -> None:
    """Send `{"type": message_type}` to a channel group soon, from this process's hint thread."""
    if hints_enabled():
        _hinter().send(group, message_type)


class _Hinter:
    """One daemon thread per process with its own event loop sends the hints, so callers never
    block (sending inline, a fresh event loop and Redis connection each time, cost a worker ~10 ms
    per hint under load) and the layer keeps one set of Redis connections instead of one per
    call. A hint already waiting is not queued twice: a hint says only "look again"."""

    MAX_PENDING = 100
    SEND_TIMEOUT = 2.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pending: queue.Queue = queue.Queue(maxsize=self.MAX_PENDING)
        self.waiting: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self.run, name="hints", daemon=True).start()

    def send(self, group: str, message_type: str) -> None:
        hint = (group, message_type)
        with self.lock:
            if hint in self.waiting:
                return
            try:
                self.pending.put_nowait(hint)
            except queue.Full:
                return  # Redis is not keeping up; the consumers' polling still carries everything
            self.waiting.add(hint)

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            group, message_type = hint = self.pending.get()
            with self.lock:
                self.waiting.discard(hint)
            send = get_channel_layer().group_send(group, {"type": message_type})
            try:
                loop.run_until_complete(asyncio.wait_for(send, self.SEND_TIMEOUT))
            except Exception as exc:  # no traceback: during a Redis outage this repeats
                log.warning("could not send a hint to %s: %r", group, exc)


_hinter_lock = threading.Lock()
_hinter_instance: _Hinter | None = None


def _hinter() -> _Hinter:
    global _hinter_instance
    with _hinter_lock:
        if _hinter_instance is None or _hinter_instance.pid != os.getpid():  # a forked worker starts its own
            _hinter_instance = _Hinter()
        return _hinter_instance


class TextPublisher:
    """Throttles `save(text)` to one call per `interval` and hints the task's sockets after each.

    Call it with the accumulated text as often as you like; `flush()` saves the last text.
    Returns False once `save` reports the task is no longer running, so the LLM call can stop.
    """

    def __init__(
        self,
        save: Callable[[str], object] | None,
        task_id: object = None,
        interval: float = SAVE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.save, self.task_id, self.interval, self.clock = save, task_id, interval, clock
        self.saved = ""
        self.pending = ""
        self.last_save = float("-inf")

    def __call__(self, text: str) -> bool:
        self.pending = text
        if text == self.saved or self.clock() - self.last_save < self.interval:
            return True
        return self.flush()

    def flush(self, text: str | None = None) -> bool:
        text = self.pending if text is None else text
        self.pending, self.last_save = text, self.clock()
        if self.save is None or text == self.saved:
            return True
        try:
            alive = self.save(text)
        except Exception:  # a failed progress save must not cost the reading
            log.warning("could not save partial text for task %s", self.task_id, exc_info=True)
            return True
        self.saved = text
        if self.task_id is not None:
            notify_task(self.task_id)
        return alive is not False
