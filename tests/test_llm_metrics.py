"""Per-endpoint LLM figures (chat/llm_stats.py) in /metrics and the dashboard, and the alert when
fallbacks have answered in place of the primary for too long. Figures come from the calls each
task recorded (`timings["llm_calls"]`), so they are the same in every process."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.llm_stats import endpoint_figures, primary_bypassed_since
from chat.models import Conversation, FortuneTask
from monitoring.alerts import Facts, evaluate, llm_bypass_alerts
from tests.test_prometheus import by_label, scrape


@pytest.fixture
def with_backup(settings):
    settings.LLM_BASE_URL, settings.OPENAI_API_KEY, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "", "main-model"
    backup = {"name": "backup", "base_url": "http://127.0.0.1:9/v1", "api_key": "", "model": "m", "timeout": 2.0}
    settings.LLM_FALLBACKS = [backup | {"min_time": 0.5}]
    settings.BREAKERS = {**settings.BREAKERS, "llm-backup": dict(settings.BREAKERS["llm"])}


def reading(user, calls: dict, answered: str | None, minutes_ago: float = 1) -> FortuneTask:
    """A finished task whose reading made `calls` ({endpoint: (ms, ok)}) and `answered` answered."""
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    result = {"interpretation": "…", "degraded_reasons": []} | (
        {"llm": {"endpoint": answered, "model": "m"}} if answered else {}
    )
    return FortuneTask.objects.create(
        user=user,
        conversation=Conversation.objects.create(user=user),
        question="q",
        status="succeeded",
        submitted_at=finished - timedelta(seconds=5),
        started_at=finished - timedelta(seconds=4),
        finished_at=finished,
        total_ms=5000,
        deadline=finished + timedelta(minutes=2),
        result=result,
        timings={"llm_calls": {name: {"ms": ms, "ok": ok} for name, (ms, ok) in calls.items()}},
    )


def test_the_figures_count_calls_failures_and_latency_per_endpoint(alice, with_backup):
    for ms in (100, 200, 300):
        reading(alice, {"primary": (ms, True)}, "primary")
    reading(alice, {"primary": (5000, False), "backup": (400, True)}, "backup")
    reading(alice, {"primary": (9000, False)}, "primary", minutes_ago=120)  # outside the hour
    figures = {f["endpoint"]: f for f in endpoint_figures(timezone.now())}
    assert list(figures) == ["primary", "backup"]
    assert figures["primary"] == {
        "endpoint": "primary",
        "breaker": "llm",
        "model": "main-model",
        "calls": 4,
        "failures": 1,
        "p50_ms": 200,
        "p95_ms": 5000,
    }
    assert (figures["backup"]["calls"], figures["backup"]["failures"], figures["backup"]["p95_ms"]) == (1, 0, 400)


def test_metrics_expose_each_endpoint(alice, with_backup, admin_client):
    reading(alice, {"primary": (5000, False), "backup": (400, True)}, "backup")
    reading(alice, {"primary": (300, True)}, "primary", minutes_ago=120)
    samples = scrape(admin_client.get("/metrics").content.decode())
    assert by_label(samples, "fortune_llm_calls_total", "endpoint") == {"primary": 2, "backup": 1}
    assert by_label(samples, "fortune_llm_call_failures_total", "endpoint") == {"primary": 1, "backup": 0}
    assert by_label(samples, "fortune_llm_call_duration_seconds_count", "endpoint") == {"primary": 2, "backup": 1}
    recent = samples["fortune_llm_call_latency_seconds"]
    assert recent[(("endpoint", "backup"), ("quantile", "0.95"))] == 0.4
    assert not by_label(samples, "fortune_scrape_errors", "section")


def test_the_dashboard_shows_each_endpoint(alice, with_backup, as_bob, one_cluster):
    reading(alice, {"primary": (5000, False), "backup": (400, True)}, "backup")
    tasks = as_bob.get("/api/v1/monitoring/dashboard").json()["tasks"]
    assert [(e["endpoint"], e["calls"], e["failures"]) for e in tasks["llm"]] == [("primary", 1, 1), ("backup", 1, 0)]


def test_the_primary_counts_as_bypassed_from_the_first_fallback_answer_after_its_last(alice, with_backup):
    now = timezone.now()
    reading(alice, {"backup": (400, True)}, "backup", minutes_ago=30)
    reading(alice, {"primary": (300, True)}, "primary", minutes_ago=20)
    first = reading(alice, {"primary": (5000, False), "backup": (400, True)}, "backup", minutes_ago=12)
    reading(alice, {"backup": (400, True)}, "backup", minutes_ago=1)
    assert primary_bypassed_since(now, lookback=3600, recent=900) == first.finished_at
    assert primary_bypassed_since(now, lookback=3600, recent=30) is None  # no fallback answer lately
    reading(alice, {"primary": (300, True)}, "primary", minutes_ago=0.5)
    assert primary_bypassed_since(now, lookback=3600, recent=900) is None  # traffic came back


def test_nothing_is_bypassed_without_fallbacks(alice, settings):
    settings.LLM_FALLBACKS = []
    reading(alice, {"backup": (400, True)}, "backup")
    assert primary_bypassed_since(timezone.now(), lookback=3600, recent=900) is None


def test_the_alert_fires_once_the_primary_was_bypassed_longer_than_the_limit(settings):
    settings.ALERT_LLM_BYPASSED = 300
    now = timezone.now()
    assert llm_bypass_alerts(Facts(now=now, llm_bypassed_since=now - timedelta(seconds=200))) == []
    assert llm_bypass_alerts(Facts(now=now)) == []
    since = now - timedelta(minutes=7)
    [alert] = [a for a in evaluate(Facts(now=now, llm_bypassed_since=since)) if a.code == "llm_primary_bypassed"]
    assert (alert.severity, alert.since) == ("warning", since)
    assert "7 min" in alert.message
