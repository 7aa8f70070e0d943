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
    if hints_enabled():
        _hinter().send(task_id)


class _Hinter:
    """One daemon thread per process with its own event loop sends the hints, so callers never
    block and the layer keeps one set of Redis connections instead of one per call."""

    MAX_PENDING = 100
    SEND_TIMEOUT = 2.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pending: queue.Queue = queue.Queue(maxsize=self.MAX_PENDING)
        threading.Thread(target=self.run, name="task-hints", daemon=True).start()

    def send(self, task_id: object) -> None:
        try:
            self.pending.put_nowait(str(task_id))
        except queue.Full:
            pass  # Redis is not keeping up; the consumers' polling still carries everything

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            task_id = self.pending.get()
            message = {"type": "task.changed"}
            send = get_channel_layer().group_send(task_group(task_id), message)
            try:
                loop.run_until_complete(asyncio.wait_for(send, self.SEND_TIMEOUT))
            except Exception as exc:  # no traceback: during a Redis outage this repeats
                log.warning("could not send a hint for task %s: %r", task_id, exc)


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
