"""Django-Q2 signal receivers: each worker records its busy/idle state (chat/workers.py).

They run inside the worker process (post_spawn at start, pre_execute / post_execute_in_worker
around each task); at start the worker first warms up (chat/warmup.py: the embedding model).
A bookkeeping failure must never cost a task, so every receiver swallows and logs its errors.
With Redis, a change also hints whoever listens on WORKERS_GROUP (the operations live page) to
poll at once; the in-memory channel layer cannot cross processes, so embedded mode
relies on polling.
"""

import logging
from collections.abc import Callable

from django.dispatch import receiver
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

from chat import warmup, workers
from chat.live import notify_group

log = logging.getLogger(__name__)

WORKERS_GROUP = "ops-monitoring"  # the channel group told of worker changes


def notify_live() -> None:
    """Wake the sockets listening for worker changes soon, without waiting (chat/live.py's hint
    thread). Best effort: a lost hint costs one poll."""
    notify_group(WORKERS_GROUP, "monitoring.changed")


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
