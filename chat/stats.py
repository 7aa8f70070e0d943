"""Task statistics: the one home of every figure about FortuneTasks that more than one place shows.

Submission's backlog limits, the worker-pool and dashboard views, the alerts, Prometheus and the
user metrics all ask these functions, so no two of them can disagree about the same number.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Min, QuerySet
from django.utils import timezone

from chat.models import ENDED, FortuneTask, Status
from fortune_project.timefmt import iso, ms_between


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


def status_counts(tasks: QuerySet[FortuneTask] | None = None) -> dict[str, int]:
    """{status: n} for every status (zeros included), in one query."""
    tasks = FortuneTask.objects.all() if tasks is None else tasks
    counts = dict(tasks.values_list("status").annotate(n=Count("id")))
    return {s: counts.get(s, 0) for s in Status.values}


# --- The queue -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    queued: int
    oldest_queued_at: datetime | None

    def oldest_age_s(self, now: datetime) -> float | None:
        return (now - self.oldest_queued_at).total_seconds() if self.oldest_queued_at else None


def backlog() -> Backlog:
    """How many tasks wait for a worker, and since when the oldest has waited (one query)."""
    row = FortuneTask.objects.filter(status=Status.QUEUED).aggregate(n=Count("id"), oldest=Min("submitted_at"))
    return Backlog(row["n"], row["oldest"])


def queue_state(now: datetime | None = None) -> dict:
    """The queue as the operations views show it: the database is the truth, the broker holds ids."""
    now = now or timezone.now()
    waiting = backlog()
    return {
        "queued": waiting.queued,
        "running": FortuneTask.objects.filter(status=Status.RUNNING).count(),
        "oldest_queued_at": iso(waiting.oldest_queued_at),
        "oldest_queued_age_ms": ms_between(waiting.oldest_queued_at, now),
        "max_queued": settings.MAX_QUEUED_TASKS,
        "max_age_ms": settings.MAX_QUEUE_AGE * 1000,
    }


# --- Outcomes over a window ----------------------------------------------------------------------


def task_figures(tasks: QuerySet[FortuneTask]) -> dict:
    """Counts by status, success rate, degraded count and total-time percentiles of `tasks`."""
    by_status = status_counts(tasks)
    ended = sum(by_status[s] for s in ENDED)
    ended_ms = tasks.filter(total_ms__isnull=False, status=Status.SUCCEEDED).values_list("total_ms", flat=True)
    totals = [t for t in ended_ms if t is not None]  # all of them: the filter excludes NULL
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "success_rate": _rate(by_status[Status.SUCCEEDED], ended),
        "degraded": tasks.filter(degraded=True).count(),
        "total_ms_p50": percentile(totals, 0.5),
        "total_ms_p95": percentile(totals, 0.95),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def window_figures(now: datetime, hours: int) -> dict:
    """task_figures over tasks submitted in the window, plus rates, queue wait and throughput
    (tasks that ended in the window, per minute)."""
    since = now - timedelta(hours=hours)
    tasks = FortuneTask.objects.filter(submitted_at__gte=since)
    figures = task_figures(tasks)
    pairs = tasks.filter(started_at__isnull=False).values_list("submitted_at", "started_at")
    waits = [w for s, t in pairs if (w := ms_between(s, t)) is not None]
    ended = FortuneTask.objects.filter(finished_at__gte=since, status__in=ENDED).count()
    return {
        **figures,
        "window_hours": hours,
        "degraded_rate": _rate(figures["degraded"], figures["by_status"][Status.SUCCEEDED]),
        "queue_ms_p50": percentile(waits, 0.5),
        "queue_ms_p95": percentile(waits, 0.95),
        "ended": ended,
        "throughput_per_min": round(ended / (hours * 60), 3),
    }


@dataclass(frozen=True)
class Outcomes:
    ended: dict[str, int]  # by status, of ENDED
    late: int  # timed out past deadline + grace: their worker hung or died


def recent_outcomes(now: datetime, seconds: float) -> Outcomes:
    """How the tasks that finished in the last `seconds` ended."""
    recent = FortuneTask.objects.filter(finished_at__gte=now - timedelta(seconds=seconds))
    ended = dict(recent.filter(status__in=ENDED).values_list("status").annotate(n=Count("id")))
    deadline_passed = F("deadline") + timedelta(seconds=settings.TASK_GRACE)
    late = recent.filter(status=Status.TIMED_OUT, finished_at__gte=deadline_passed).count()
    return Outcomes(ended, late)
