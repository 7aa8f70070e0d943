"""Rescuing orphaned tasks: when a worker or a whole cluster dies, a survivor runs its tasks.

Without this, a task whose worker died waits out its deadline plus grace before the sweeper ends
it; Django-Q2 itself re-delivers only after `retry` (ORM broker) or never (Redis, which loses the
tasks a dead cluster had prefetched). The sweeper calls `rescue_orphans()` on every pass:

- a `running` task is orphaned once its worker (host, pid) has been missing from every live
  cluster's heartbeat (chat/workers.py `liveness()`) for ORPHAN_AFTER seconds in a row. One read
  is never enough: the heartbeat has a 3 s TTL and, after a cluster restart, can be missing for
  about 10 s while its workers already run tasks (shared/NOTES.md), so the first-missing time
  is kept in the shared cache and forgotten as soon as the worker is seen again;
- a `queued` task is orphaned once it has been seen queued for ORPHAN_QUEUED_AFTER seconds on
  every pass while some live cluster had settled idle workers and an empty queue.

An orphan with at least RESCUE_MIN_SECONDS of its deadline left and fewer than MAX_ATTEMPTS
attempts is re-queued by one conditional update (attempt N -> N + 1) and enqueued again with
its new attempt; every later write of the old attempt's worker is refused (chat/lifecycle.py).
A running orphan that cannot be re-run ends `timed_out` with `worker_lost` at once. A queued one
is left to be delivered late or to the deadline sweep: it may still be waiting in a busy cluster.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat import lifecycle
from chat.live import notify_task
from chat.models import FortuneTask, Status
from chat.submission import enqueue
from chat.workers import Liveness, idle_workers, live_worker_ids, liveness

log = logging.getLogger(__name__)

MISSING_KEY = "rescue:missing"
QUEUED_KEY = "rescue:queued"  # {"<task id>:<attempt>": when first seen queued while workers idled}
# Seconds a worker must have been idle to count as capacity the broker is not feeding: a worker
# between two tasks is idle for milliseconds, and the ORM broker polls every QUEUE_POLL.
IDLE_SETTLED = 2.0
REQUEUED, LOST = "requeued", "lost"


@dataclass(frozen=True)
class Orphan:
    id: uuid.UUID
    status: str
    attempt: int
    deadline: datetime


@dataclass
class RescuePass:
    requeued: int = 0
    lost: int = 0


def rescue_orphans(now: datetime | None = None, live: Liveness | None = None) -> RescuePass:
    """Find this moment's orphans and rescue each; nothing when the heartbeats cannot be read."""
    now = now or timezone.now()
    live = live or liveness(now)
    done = RescuePass()
    if live.error:
        return done
    for orphan in running_orphans(live, now) + queued_orphans(live, now):
        outcome = rescue(orphan, now)
        done.requeued += outcome == REQUEUED
        done.lost += outcome == LOST
    if done.requeued or done.lost:
        log.warning("rescued %d orphaned task(s), ended %d as worker_lost", done.requeued, done.lost)
    return done


def rescue(orphan: Orphan, now: datetime) -> str | None:
    """Re-queue the orphan as its next attempt, or end it `worker_lost` (running only)."""
    left = (orphan.deadline - now).total_seconds()
    if orphan.attempt < settings.MAX_ATTEMPTS and left >= settings.RESCUE_MIN_SECONDS:
        if not lifecycle.requeue_task(orphan.id, orphan.status, orphan.attempt, now):
            return None  # claimed, ended or rescued by someone else meanwhile
        if not enqueue(FortuneTask(id=orphan.id, attempt=orphan.attempt + 1)):
            log.error("rescued task %s could not be enqueued; a later rescue or the deadline sweep ends it", orphan.id)
        notify_task(orphan.id)
        return REQUEUED
    if orphan.status == Status.RUNNING and lifecycle.end_lost(orphan.id, orphan.attempt, now):
        notify_task(orphan.id)
        return LOST
    return None


# --- Finding orphans -------------------------------------------------------------------------------


def _missing_key(host: str, pid: int) -> str:
    return f"{MISSING_KEY}:{host}:{pid}"


def running_orphans(live: Liveness, now: datetime) -> list[Orphan]:
    """Running tasks whose worker has been missing from the heartbeats for ORPHAN_AFTER seconds."""
    rows = FortuneTask.objects.filter(status=Status.RUNNING, worker_pid__isnull=False).exclude(worker_host="")
    fields = ("id", "attempt", "deadline", "started_at", "worker_host", "worker_pid")
    tasks = [(*row[:5], int(row[5] or 0)) for row in rows.values_list(*fields)]
    alive = live_worker_ids(live)
    seen_again = [_missing_key(h, p) for *_, h, p in tasks if (h, p) in alive]
    if seen_again:
        cache.delete_many(seen_again)  # "missing" means missing on every read, not on one
    missing = [t for t in tasks if (t[4], t[5]) not in alive]
    since = _first_missing({(h, p) for *_, h, p in missing}, now)
    orphans = []
    for task_id, attempt, deadline, started_at, host, pid in missing:
        # A claim proves its worker alive then: an old mark (a reused pid) must not count.
        gone_since = max(t for t in (since[(host, pid)], started_at) if t)
        if (now - gone_since).total_seconds() >= settings.ORPHAN_AFTER:
            orphans.append(Orphan(task_id, Status.RUNNING, attempt, deadline))
    return orphans


def _first_missing(workers: set[tuple[str, int]], now: datetime) -> dict[tuple[str, int], datetime]:
    """When each worker was first seen missing (now, for those seen missing for the first time)."""
    keys = {w: _missing_key(*w) for w in workers}
    marks = cache.get_many(list(keys.values())) if keys else {}
    ttl = settings.TASK_TIMEOUT + settings.TASK_GRACE + 60  # no task runs longer than that
    found = {}
    for worker, key in keys.items():
        mark = parse_datetime(marks[key]) if isinstance(marks.get(key), str) else None
        if mark is None:
            cache.add(key, now.isoformat(), timeout=ttl)
        found[worker] = mark or now
    return found


def queued_orphans(live: Liveness, now: datetime) -> list[Orphan]:
    """Tasks seen queued for ORPHAN_QUEUED_AFTER seconds on every pass while settled idle workers
    waited on an empty queue: the broker lost them. The clock starts at the first such pass, not
    at submission (a submit can commit and enqueue late), and restarts whenever no worker idles."""
    if not idle_workers(live, now, IDLE_SETTLED):
        cache.delete(QUEUED_KEY)
        return []
    seen = cache.get(QUEUED_KEY)
    seen = seen if isinstance(seen, dict) else {}
    rows = FortuneTask.objects.filter(status=Status.QUEUED, deadline__gt=now)
    current, orphans = {}, []
    for task_id, attempt, deadline in rows.values_list("id", "attempt", "deadline"):
        key = f"{task_id}:{attempt}"
        since = parse_datetime(seen.get(key) or "") or now
        current[key] = since.isoformat()
        if (now - since).total_seconds() >= settings.ORPHAN_QUEUED_AFTER:
            orphans.append(Orphan(task_id, Status.QUEUED, attempt, deadline))
    cache.set(QUEUED_KEY, current, timeout=settings.TASK_TIMEOUT + settings.TASK_GRACE + 60)
    return orphans


# --- Figures (the admin, the live page, /metrics, the alert) ---------------------------------------

LOST_FILTER = Q(status=Status.TIMED_OUT, error__code=lifecycle.WORKER_LOST_ERROR["code"])


def recent_rescues(now: datetime, seconds: float) -> dict[str, int]:
    """Tasks re-queued by a rescue, and tasks ended `worker_lost`, in the last `seconds`."""
    since = now - timedelta(seconds=seconds)
    return {
        "rescued": FortuneTask.objects.filter(rescued_at__gte=since).count(),
        "worker_lost": FortuneTask.objects.filter(LOST_FILTER, finished_at__gte=since).count(),
    }


def rescue_totals() -> dict[str, int]:
    """All-time: rescues (every attempt past the first is one) and tasks ended `worker_lost`."""
    row = FortuneTask.objects.aggregate(rescues=Sum(F("attempt") - 1), lost=Count("id", filter=LOST_FILTER))
    return {"rescues": row["rescues"] or 0, "worker_lost": row["lost"]}
