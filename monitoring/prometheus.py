"""Prometheus exposition at /metrics, computed from shared state at scrape time.

Tasks run in several worker processes, so in-process counters would each see a slice. A custom
collector instead reads the database (task counts and latency histograms), the cache (breakers,
worker records) and the cluster heartbeat on every scrape, which any web process answers alike.
A section that fails to read is skipped and counted in `fortune_scrape_errors`, so one dead
dependency does not blank the whole page.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from chat import llm_endpoints, llm_stats
from chat.models import ACTIVE, TERMINAL, FortuneTask
from chat.rescue import rescue_totals
from chat.stats import queue_state, status_counts
from chat.workers import BUSY, IDLE, liveness
from fortune_project.resilience.breakers import all_snapshots
from fortune_project.resilience.models import BreakerState

log = logging.getLogger(__name__)

# Seconds; wide enough for a 120 s task deadline.
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


def task_counts() -> Iterable[Metric]:
    counts = status_counts()
    finished = CounterMetricFamily("fortune_tasks_finished", "Tasks that reached a terminal status.", labels=["status"])
    for status in TERMINAL:
        finished.add_metric([status], counts.get(status, 0))
    active = GaugeMetricFamily("fortune_tasks_active", "Tasks queued or running now.", labels=["status"])
    for status in ACTIVE:
        active.add_metric([status], counts.get(status, 0))
    submitted = CounterMetricFamily("fortune_tasks_submitted", "Tasks ever submitted.")
    submitted.add_metric([], sum(counts.values()))
    return [submitted, finished, active]


def _histogram_row(row: Mapping[str, Any], scale: float) -> tuple[list[tuple[str, float]], float]:
    """Cumulative bucket counts and the sum (in seconds) from one aggregate row."""
    buckets = [(str(float(b)), row[f"le{i}"]) for i, b in enumerate(BUCKETS)] + [("+Inf", row["n"])]
    return buckets, (row["total"] or 0) / scale


def _bucket_counts(expression, values: Callable[[float], object]) -> dict:
    return {f"le{i}": Count("id", filter=Q(**{f"{expression}__lte": values(b)})) for i, b in enumerate(BUCKETS)}


def task_durations() -> Metric:
    """Submitted-to-finished time of ended tasks, by status, as a histogram."""
    rows = (
        FortuneTask.objects.filter(status__in=TERMINAL, total_ms__isnull=False)
        .values("status")
        .annotate(n=Count("id"), total=Sum("total_ms"), **_bucket_counts("total_ms", lambda b: b * 1000))
    )
    family = HistogramMetricFamily(
        "fortune_task_duration_seconds", "Time from submission to a terminal status.", labels=["status"]
    )
    for row in rows:
        buckets, total = _histogram_row(row, 1000)
        family.add_metric([row["status"]], buckets, total)
    return family


def queue_waits() -> Metric:
    """Submitted-to-claimed time of ended tasks (their recorded timings.queue_ms) as a histogram.
    Read from the JSON with the database's native function: a timestamp difference is a Python
    function per row on SQLite, 40 times slower."""
    wait = Cast(KT("timings__queue_ms"), IntegerField())
    row = (
        FortuneTask.objects.filter(status__in=TERMINAL)
        .annotate(wait=wait)
        .filter(wait__isnull=False)
        .aggregate(n=Count("id"), total=Sum("wait"), **_bucket_counts("wait", lambda b: b * 1000))
    )
    buckets, total = _histogram_row(row, 1000)
    family = HistogramMetricFamily("fortune_task_queue_wait_seconds", "Time a task waited before a worker claimed it.")
    family.add_metric([], buckets, total)
    return family


def queue_metrics() -> Iterable[Metric]:
    queue = queue_state(timezone.now())
    depth = GaugeMetricFamily("fortune_queue_depth", "Tasks waiting for a worker.", value=queue["queued"])
    age_ms = queue["oldest_queued_age_ms"] or 0
    age = GaugeMetricFamily("fortune_queue_oldest_age_seconds", "Age of the oldest queued task.", value=age_ms / 1000)
    return [depth, age]


def worker_metrics() -> Iterable[Metric]:
    live = liveness()
    clusters, workers = live.clusters, live.workers
    by_state = GaugeMetricFamily("fortune_workers", "Live task workers by state.", labels=["state"])
    for state in (BUSY, IDLE):
        by_state.add_metric([state], sum(w["state"] == state for w in workers))
    return [
        by_state,
        GaugeMetricFamily(
            "fortune_workers_configured", "Workers the cluster should run.", value=settings.FORTUNE_WORKERS
        ),
        GaugeMetricFamily("fortune_clusters", "Task clusters with a live heartbeat.", value=len(clusters)),
    ]


def rescue_metrics() -> Iterable[Metric]:
    """Orphaned tasks caught by the sweeper (chat/rescue.py), counted from the task rows, so the
    counters survive restarts and agree across web processes."""
    totals = rescue_totals()
    rescues = CounterMetricFamily(
        "fortune_task_rescues", "Times an orphaned task was re-queued as a new attempt.", value=totals["rescues"]
    )
    lost = CounterMetricFamily(
        "fortune_tasks_worker_lost",
        "Tasks ended worker_lost: orphaned with too little time left to re-run.",
        value=totals["worker_lost"],
    )
    return [rescues, lost]


def llm_metrics() -> Iterable[Metric]:
    """Per configured LLM endpoint: calls and failed calls ever, call time as a histogram, and the
    last hour's p50/p95 as the dashboard shows them (chat/llm_stats.py)."""
    calls = CounterMetricFamily("fortune_llm_calls", "LLM calls made, by endpoint.", labels=["endpoint"])
    failures = CounterMetricFamily(
        "fortune_llm_call_failures", "LLM calls that timed out, erred or answered garbage.", labels=["endpoint"]
    )
    durations = HistogramMetricFamily(
        "fortune_llm_call_duration_seconds", "Time of each LLM call, failed ones too.", labels=["endpoint"]
    )
    for name in llm_endpoints.names():
        row = llm_stats.calls_to(name).aggregate(
            n=Count("id"),
            failed=Count("id", filter=llm_stats.failed(name)),
            total=Sum("call_ms"),
            **_bucket_counts("call_ms", lambda b: b * 1000),
        )
        calls.add_metric([name], row["n"])
        failures.add_metric([name], row["failed"])
        buckets, total = _histogram_row(row, 1000)
        durations.add_metric([name], buckets, total)
    recent = GaugeMetricFamily(
        "fortune_llm_call_latency_seconds", "LLM call time over the last hour.", labels=["endpoint", "quantile"]
    )
    for figures in llm_stats.endpoint_figures(timezone.now()):
        for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
            if figures[key] is not None:
                recent.add_metric([figures["endpoint"], quantile], figures[key] / 1000)
    return [calls, failures, durations, recent]


def breaker_metrics() -> Iterable[Metric]:
    state = GaugeMetricFamily("fortune_breaker_state", "1 for each breaker's current state.", labels=["name", "state"])
    failures = GaugeMetricFamily("fortune_breaker_failures", "Current failure count.", labels=["name"])
    for b in all_snapshots():
        for choice in BreakerState.values:
            state.add_metric([b["name"], choice], float(b["state"] == choice))
        failures.add_metric([b["name"]], b["failures"])
    return [state, failures]


SECTIONS: dict[str, Callable[[], Iterable[Metric] | Metric]] = {
    "tasks": task_counts,
    "durations": task_durations,
    "queue_waits": queue_waits,
    "queue": queue_metrics,
    "workers": worker_metrics,
    "rescues": rescue_metrics,
    "breakers": breaker_metrics,
    "llm": llm_metrics,
}


class FortuneCollector:
    """Reads everything at collect() time; registered on a registry of its own (no per-process
    defaults such as process_* and python_gc_*, which would describe one web process only)."""

    def collect(self) -> Iterable[Metric]:
        errors = GaugeMetricFamily("fortune_scrape_errors", "Sections that failed in this scrape.", labels=["section"])
        for name, section in SECTIONS.items():
            try:
                found = section()
            except Exception:
                log.warning("metrics section %s failed", name, exc_info=True)
                errors.add_metric([name], 1)
                continue
            yield from [found] if isinstance(found, Metric) else found
        yield errors


registry = CollectorRegistry(auto_describe=False)
registry.register(FortuneCollector())


def exposition() -> bytes:
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    """A scraper with METRICS_TOKEN, or a signed-in operator: /metrics is not public (contract)."""
    if request.user.is_active and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and constant_time_compare(given, f"Bearer {token}")


def metrics_view(request: HttpRequest) -> HttpResponse:
    if _authorized(request):
        return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    message = "METRICS_TOKEN bearer token or a staff session required\n"
    if request.user.is_authenticated:  # signed in, but not an operator: other credentials would not help
        return HttpResponse(message, status=403, content_type="text/plain")
    response = HttpResponse(message, status=401, content_type="text/plain")
    response["WWW-Authenticate"] = "Bearer"
    return response
