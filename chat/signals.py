"""Django-Q2 signal receivers: each worker records its busy/idle state (monitoring/workers.py).

They run inside the worker process (post_spawn at start, pre_execute / post_execute_in_worker
around each task). A bookkeeping failure must never cost a task, so every receiver swallows and
logs its errors. With Redis, a change also hints the live sockets (monitoring/live.py) to poll at
once; the in-memory channel layer cannot cross processes, so embedded mode relies on polling.
"""

import logging
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.dispatch import receiver
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

from chat.live import hints_enabled
from monitoring import workers

log = logging.getLogger(__name__)

LIVE_GROUP = "ops-monitoring"


def notify_live() -> None:
    """Wake the /ws/monitoring/ consumers now. Best effort: a lost hint costs one poll interval."""
    if not hints_enabled():
        return
    try:
        async_to_sync(get_channel_layer().group_send)(LIVE_GROUP, {"type": "monitoring.changed"})
    except Exception:
        log.warning("could not hint the live monitoring sockets", exc_info=True)


def _safely(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        log.warning("worker bookkeeping failed", exc_info=True)
        return
    notify_live()


@receiver(post_spawn, dispatch_uid="monitoring.worker_spawned")
def worker_spawned(sender, proc_name: str = "", **kwargs) -> None:
    _safely(workers.record_idle)


@receiver(pre_execute, dispatch_uid="monitoring.task_started")
def task_started(sender, func=None, task: dict | None = None, **kwargs) -> None:
    _safely(lambda: workers.record_busy(func, task or {}))


@receiver(post_execute_in_worker, dispatch_uid="monitoring.task_finished")
def task_finished(sender, func=None, task: dict | None = None, **kwargs) -> None:
    _safely(workers.record_idle)
