"""The operations snapshot: one dict that the dashboard API, the admin page and the live socket
all render. `snapshot()` is fresh; `live_snapshot()` reuses the slower task figures for a few
seconds (OPS_FIGURES_TTL) since the socket polls twice a second."""

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat.llm_stats import endpoint_figures
from chat.models import TERMINAL, FortuneTask, Status
from chat.rescue import recent_rescues, rescue_totals
from chat.stats import percentile, queue_state, window_figures
from chat.workers import BUSY, IDLE, Liveness, liveness
from fortune_project.resilience.breakers import all_snapshots
from fortune_project.timefmt import iso
from monitoring import alerts

log = logging.getLogger(__name__)

SERIES_MINUTES = 15
LATEST_TASKS = 12


# --- Workers -------------------------------------------------------------------------------------


def worker_pool(now: datetime | None = None, queue: dict | None = None, live: Liveness | None = None) -> dict:
    """The contract's worker-pool body (plus a few extra fields)."""
    now = now or timezone.now()
    live = live or liveness(now)
    queue = queue or queue_state(now)
    return {
        "max_workers": settings.FORTUNE_WORKERS,
        "clusters": live.clusters,
        "workers": live.workers,
        "busy": sum(w["state"] == BUSY for w in live.workers),
        "idle": sum(w["state"] == IDLE for w in live.workers),
        "queued": queue["queued"],
        "running": queue["running"],
        "oldest_queued_age_ms": queue["oldest_queued_age_ms"],
    }


# --- Task figures ------------------------------------------------------------------------------


def _bucket(rows: list[tuple], start: datetime) -> dict:
    totals = [ms for _, status, ms in rows if status == Status.SUCCEEDED and ms is not None]
    return {
        "start": iso(start),
        "finished": len(rows),
        "succeeded": sum(status == Status.SUCCEEDED for _, status, _ in rows),
        "failed": sum(status in (Status.FAILED, Status.TIMED_OUT) for _, status, _ in rows),
        "p95_ms": percentile(totals, 0.95),
    }


def series(now: datetime, minutes: int = SERIES_MINUTES) -> list[dict]:
    """Per-minute throughput and p95 total time of the tasks that ended in the last minutes."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    rows = list(
        FortuneTask.objects.filter(finished_at__gte=start, status__in=TERMINAL).values_list(
            "finished_at", "status", "total_ms"
        )
    )
    buckets: list[list[tuple]] = [[] for _ in range(minutes)]
    for row in rows:
        assert row[0] is not None  # finished_at__gte excludes NULL
        index = int((row[0] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            buckets[index].append(row)
    return [_bucket(b, start + timedelta(minutes=i)) for i, b in enumerate(buckets)]


def latest_tasks(limit: int = LATEST_TASKS) -> list[dict]:
    rows = FortuneTask.objects.select_related("user", "temple").order_by("-submitted_at")[:limit]
    return [
        {
            "id": str(t.id),
            "status": t.status,
            "stage": t.stage,
            "user": t.user.get_username(),
            "temple": t.temple.slug if t.temple else None,
            "question": t.question[:120],
            "degraded": t.degraded,
            "submitted_at": iso(t.submitted_at),
            "finished_at": iso(t.finished_at),
            "total_ms": t.total_ms,
            "worker_pid": t.worker_pid,
        }
        for t in rows
    ]


def rescue_figures(now: datetime) -> dict:
    """Orphaned tasks re-queued (`rescued`) or ended `worker_lost`, over 1 h and 24 h, and all-time."""
    return {
        "last_1h": recent_rescues(now, 3600),
        "last_24h": recent_rescues(now, 24 * 3600),
        "total": rescue_totals(),
    }


def task_section(now: datetime) -> dict:
    return {
        "last_1h": window_figures(now, 1),
        "last_24h": window_figures(now, 24),
        "series": series(now),
        "rescues": rescue_figures(now),
        "llm": endpoint_figures(now),  # per LLM endpoint over the last hour (chat/llm_stats.py)
    }


class _Memo:
    """The last value of an expensive function, reused for `ttl` seconds (per process, so
    several sockets polling in one web process share one computation)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.value, self.at = None, float("-inf")
        self.lock = threading.Lock()

    def get(self, compute, ttl: float):
        with self.lock:
            if self.value is None or self.clock() - self.at >= ttl:
                self.value, self.at = compute(), self.clock()
            return self.value


_figures = _Memo()


# --- System --------------------------------------------------------------------------------------


def system_section(now: datetime) -> dict:
    return {
        "time": iso(now),
        "host": socket.gethostname(),
        "web_pid": os.getpid(),
        "database": connection.vendor,
        "cache": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
        "broker": "redis" if settings.Q_CLUSTER.get("redis") else "orm",
        "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        "max_workers": settings.FORTUNE_WORKERS,
        "task_timeout_s": settings.TASK_TIMEOUT,
        "sweeper": alerts.sweeper_state(now),
    }


# --- The snapshot --------------------------------------------------------------------------------


def _breakers() -> list[dict]:
    try:
        return all_snapshots()
    except Exception:  # a broken breaker module must not take the whole picture down
        log.warning("breaker snapshots unavailable", exc_info=True)
        return []


def snapshot(now: datetime | None = None, *, tasks: dict | None = None) -> dict:
    """{"workers", "queue", "tasks", "breakers", "alerts", "system"} plus generated_at."""
    now = now or timezone.now()
    queue = queue_state(now)
    live = liveness(now)
    pool = worker_pool(now, queue, live)
    breakers = _breakers()
    tasks = {**(tasks or task_section(now)), "latest": latest_tasks()}
    return {
        "generated_at": iso(now),
        "workers": pool,
        "queue": queue,
        "tasks": tasks,
        "breakers": breakers,
        "alerts": alerts.current_alerts(clock=lambda: now, live=live, queue=queue, breakers=breakers),
        "system": system_section(now),
    }


def live_snapshot(now: datetime | None = None) -> dict:
    """The snapshot with task figures at most OPS_FIGURES_TTL seconds old; the rest is fresh."""
    now = now or timezone.now()
    return snapshot(now, tasks=_figures.get(lambda: task_section(now), settings.OPS_FIGURES_TTL))
