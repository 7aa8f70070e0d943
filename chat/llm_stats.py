"""Per-endpoint LLM figures, added up from the database: the one home of "how is each LLM
endpoint doing" for /metrics, the dashboard and the alerts.

Each task records the calls its reading made in `timings["llm_calls"]` ({endpoint: {"ms", "ok"}},
chat/interpretation.py; an endpoint skipped for an open breaker made no call and is absent), and
its result names the endpoint that answered (`result["llm"]["endpoint"]`). Workers keep no
counters of their own, so every web process reports the same figures whatever ran the tasks.
"""

from datetime import datetime, timedelta

from django.db.models import Count, IntegerField, Max, Min, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from chat import llm_endpoints
from chat.models import FortuneTask
from chat.stats import percentile
from fortune_project.llm_config import PRIMARY


def calls_to(endpoint: str) -> QuerySet[FortuneTask]:
    """Tasks that called `endpoint`, annotated with that call's `call_ms`."""
    call_ms = Cast(KT(f"timings__llm_calls__{endpoint}__ms"), IntegerField())
    return FortuneTask.objects.annotate(call_ms=call_ms).filter(call_ms__isnull=False)


def failed(endpoint: str) -> Q:
    return Q(**{f"timings__llm_calls__{endpoint}__ok": False})


def endpoint_figures(now: datetime, hours: float = 1) -> list[dict]:
    """[{"endpoint", "breaker", "model", "calls", "failures", "p50_ms", "p95_ms"}] for each
    configured endpoint, in chain order, over the tasks that ended in the last `hours`."""
    found = []
    for endpoint in llm_endpoints.chain():
        recent = calls_to(endpoint.name).filter(finished_at__gte=now - timedelta(hours=hours))
        # call_ms is calls_to()'s annotation, which the type checker cannot see through the function
        latencies = list(recent.values_list("call_ms", flat=True))  # type: ignore[misc]
        failures = recent.filter(failed(endpoint.name)).count() if latencies else 0
        found.append(
            {
                "endpoint": endpoint.name,
                "breaker": endpoint.breaker,
                "model": endpoint.model,
                "calls": len(latencies),
                "failures": failures,
                "p50_ms": percentile(latencies, 0.5),
                "p95_ms": percentile(latencies, 0.95),
            }
        )
    return found


def primary_bypassed_since(now: datetime, lookback: float, recent: float) -> datetime | None:
    """When fallbacks began answering in place of the primary, if they still do: the first
    fallback answer since the primary's last answer (looking back `lookback` seconds), provided
    a fallback answered in the last `recent` seconds. None without fallbacks configured."""
    if not llm_endpoints.fallbacks():
        return None
    answered = FortuneTask.objects.filter(finished_at__gte=now - timedelta(seconds=lookback)).filter(
        result__llm__has_key="endpoint"
    )
    last_primary = answered.filter(result__llm__endpoint=PRIMARY).aggregate(at=Max("finished_at"))["at"]
    bypasses = answered.exclude(result__llm__endpoint=PRIMARY)
    if last_primary is not None:
        bypasses = bypasses.filter(finished_at__gt=last_primary)
    row = bypasses.aggregate(first=Min("finished_at"), last=Max("finished_at"), n=Count("id"))
    if not row["n"] or row["last"] < now - timedelta(seconds=recent):
        return None
    return row["first"]
