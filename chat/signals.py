"""Django-Q2 signal receivers: each worker records its busy/idle state (chat/workers.py).

They run inside the worker process (post_spawn at start, pre_execute / post_execute_in_worker
around each task); at start the worker first warms up (chat/warmup.py: the embedding model).
A bookkeeping failure must never cost a task, so every receiver swallows and logs its errors.
With Redis, a change also hints whoever listens on WORKERS_GROUP (the operations live page) to
poll at once; the in-memory channel layer cannot cross processes, so embedded mode
relies on polling.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from channels.layers import get_channel_layer
from django.dispatch import receiver
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

from chat import warmup, workers
from chat.live import hints_enabled

log = logging.getLogger(__name__)

WORKERS_GROUP = "ops-monitoring"  # the channel group told of worker changes


def notify_live() -> None:
    """Wake the sockets listening for worker changes soon, without waiting. Best effort: a lost
    hint costs one poll."""
    if hints_enabled():
        _live_hinter().ring()


class _LiveHinter:
    """One daemon thread per process sends the hints on its own event loop: a worker rings twice
    per task, and sending inline (a fresh event loop and Redis connection each time) cost ~10 ms
    of each ring under load (measured, bench/run throughput). Rings while one is pending
    coalesce: the hint says only "look again"."""

    SEND_TIMEOUT = 2.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.wanted = threading.Event()
        threading.Thread(target=self.run, name="live-hints", daemon=True).start()

    def ring(self) -> None:
        self.wanted.set()

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            self.wanted.wait()
            self.wanted.clear()
            try:
                send = get_channel_layer().group_send(WORKERS_GROUP, {"type": "monitoring.changed"})
                loop.run_until_complete(asyncio.wait_for(send, self.SEND_TIMEOUT))
            except Exception:
                log.warning("could not hint the sockets watching the workers", exc_info=True)


_hinter_lock = threading.Lock()
_hinter: _LiveHinter | None = None


def _live_hinter() -> _LiveHinter:
    global _hinter
    with _hinter_lock:
        if _hinter is None or _hinter.pid != os.getpid():  # a forked worker starts its own
            _hinter = _LiveHinter()
        return _hinter


def _safely(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        log.warning("worker bookkeeping failed", exc_info=True)
        return
    notify_live()


@receiver(post_spawn, dispatch_uid="chat.worker_spawned")
def worker_spawned(sender, proc_name: str = "", **kwargs) -> None:
    # In the new worker, after the fork: warm first, so "idle" in the pool means ready.
    warmup.warm_up()
    _safely(workers.record_idle)


@receiver(pre_execute, dispatch_uid="chat.task_started")
def task_started(sender, func=None, task: dict | None = None, **kwargs) -> None:
    _safely(lambda: workers.record_busy(func, task or {}))


@receiver(post_execute_in_worker, dispatch_uid="chat.task_finished")
def task_finished(sender, func=None, task: dict | None = None, **kwargs) -> None:
    _safely(workers.record_idle)
