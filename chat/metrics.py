"""A user's own figures over 24 h and all time."""

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone

from chat.models import FortuneTask, Status


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


def task_figures(tasks) -> dict:
    counts = dict(tasks.values_list("status").annotate(n=Count("id")))
    by_status = {s: counts.get(s, 0) for s in Status.values}
    ended = sum(by_status[s] for s in (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT))
    totals = list(tasks.filter(total_ms__isnull=False, status=Status.SUCCEEDED).values_list("total_ms", flat=True))
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "success_rate": round(by_status[Status.SUCCEEDED] / ended, 4) if ended else None,
        "degraded": tasks.filter(Q(degraded=True)).count(),
        "total_ms_p50": percentile(totals, 0.5),
        "total_ms_p95": percentile(totals, 0.95),
    }


def user_metrics(user: AbstractBaseUser, now=None) -> dict:
    now = now or timezone.now()
    mine = FortuneTask.objects.filter(user=user)
    return {
        "last_24h": task_figures(mine.filter(submitted_at__gte=now - timedelta(hours=24))),
        "all_time": task_figures(mine),
    }
