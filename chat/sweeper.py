"""The sweeper: the last line of the terminal-state guarantee.

A worker that hangs in C code, is SIGKILLed, or is killed by Django-Q2's guard may leave its
task `running` with no Failure row (shared/NOTES.md). The sweeper ends every task still active
past deadline + TASK_GRACE. Before that, each pass rescues orphans (chat/rescue.py): a task whose
worker or cluster died is re-queued as its next attempt while enough deadline is left, or ends
`worker_lost` at once. One pass is `sweep_once()`; the command loops over it.
"""

import logging
import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from chat.lifecycle import expire_overdue
from chat.rescue import rescue_orphans

log = logging.getLogger(__name__)
HEARTBEAT_KEY = "sweeper:last_pass"


def sweep_once(now=None) -> int:
    """End overdue tasks, rescue orphans; returns how many overdue tasks ended. Records a
    heartbeat operators can check. A failing rescue never keeps the overdue tasks from ending."""
    now = now or timezone.now()
    ended = expire_overdue(now)
    beat = {"at": now.isoformat(), "ended": ended}
    try:
        rescued = rescue_orphans(now)
        beat |= {"rescued": rescued.requeued, "lost": rescued.lost}
    except Exception:
        log.exception("rescue pass failed")
    cache.set(HEARTBEAT_KEY, beat, timeout=3600)
    return ended


def sweep_forever(interval: float, should_stop: Callable[[], bool] = lambda: False) -> None:
    while not should_stop():
        close_old_connections()
        try:
            sweep_once()
        except DatabaseError as exc:  # a locked or restarting database: try again next pass
            log.warning("sweep failed: %s", exc)
        except Exception:  # the cache or anything else: the guarantee must outlive one bad pass
            log.exception("sweep failed")
        time.sleep(interval)
