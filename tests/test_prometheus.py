"""/metrics: Prometheus text that parses, with task counters read from the database at scrape time."""

import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from chat import workers
from chat.models import Conversation, FortuneTask
from fortune_project.resilience.breakers import get_breaker
from monitoring import prometheus
from tests.support import cluster as c
from tests.support.processes import ROOT, base_env, wait_until


def make_task(user, status: str, *, total_ms: int | None = 1500, queue_s: float = 0.5) -> FortuneTask:
    submitted = timezone.now() - timedelta(minutes=1)
    return FortuneTask.objects.create(
        user=user,
        conversation=Conversation.objects.create(user=user),
        question="q",
        status=status,
        submitted_at=submitted,
        started_at=submitted + timedelta(seconds=queue_s) if status != "queued" else None,
        total_ms=total_ms,
        timings={"queue_ms": int(queue_s * 1000)} if total_ms is not None else {},
        deadline=submitted + timedelta(minutes=2),
    )


def scrape(text: str) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}}."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.get(name, {}).items()}


def test_the_task_counters_match_the_database(alice, admin_client, one_cluster):
    for status in ("succeeded", "succeeded", "failed", "timed_out", "cancelled"):
        make_task(alice, status)
    make_task(alice, "queued", total_ms=None)
    make_task(alice, "running", total_ms=None)
    response = admin_client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    samples = scrape(response.content.decode())
    finished = by_label(samples, "fortune_tasks_finished_total", "status")
    assert finished == {"succeeded": 2, "failed": 1, "timed_out": 1, "cancelled": 1}
    assert by_label(samples, "fortune_tasks_active", "status") == {"queued": 1, "running": 1}
    assert samples["fortune_tasks_submitted_total"][()] == FortuneTask.objects.count() == 7
    assert samples["fortune_queue_depth"][()] == 1


def test_latency_histograms_are_cumulative(alice, one_cluster):
    for ms in (80, 400, 3000):
        make_task(alice, "succeeded", total_ms=ms, queue_s=ms / 1000)
    samples = scrape(prometheus.exposition().decode())
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples["fortune_task_duration_seconds_bucket"].items()
        if dict(labels)["status"] == "succeeded"
    }
    assert (buckets["0.1"], buckets["0.5"], buckets["5.0"], buckets["+Inf"]) == (1, 2, 3, 3)
    assert samples["fortune_task_duration_seconds_sum"][(("status", "succeeded"),)] == pytest.approx(3.48)
    waits = {dict(labels)["le"]: value for labels, value in samples["fortune_task_queue_wait_seconds_bucket"].items()}
    assert (waits["0.1"], waits["0.5"], waits["+Inf"]) == (1, 2, 3)
    assert samples["fortune_task_queue_wait_seconds_sum"][()] == pytest.approx(3.48)


def test_workers_and_breakers_are_reported(db, one_cluster):
    workers.record("busy", task="t", pid=12, host=one_cluster.host)
    get_breaker("llm").force_open(who="bob (test)")
    samples = scrape(prometheus.exposition().decode())
    assert by_label(samples, "fortune_workers", "state") == {"busy": 1, "idle": 2}
    assert samples["fortune_workers_configured"][()] == 3
    assert samples["fortune_clusters"][()] == 1
    llm = {dict(k)["state"]: v for k, v in samples["fortune_breaker_state"].items() if dict(k)["name"] == "llm"}
    assert llm["forced_open"] == 1 and llm["closed"] == 0


def test_a_failing_section_is_counted_and_the_rest_still_scraped(db, monkeypatch):
    def broken():
        raise ConnectionError("cache down")

    monkeypatch.setitem(prometheus.SECTIONS, "workers", broken)
    samples = scrape(prometheus.exposition().decode())
    assert samples["fortune_scrape_errors"] == {(("section", "workers"),): 1}
    assert "fortune_tasks_submitted_total" in samples


def test_a_scraper_needs_the_metrics_token(db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_without_a_token_set_only_staff_sessions_may_read_it(db, settings, alice, bob):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    seeker, operator = Client(), Client()
    seeker.force_login(alice)
    operator.force_login(bob)
    assert seeker.get("/metrics").status_code == 403  # signed in, but not staff
    assert seeker.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert operator.get("/metrics").status_code == 200


# --- After a run with a real cluster --------------------------------------------------------------

SCRAPE = "from monitoring.prometheus import exposition; print(exposition().decode())"


def db_counts(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM chat_fortunetask GROUP BY status").fetchall())


@pytest.mark.slow
def test_after_a_real_cluster_run_the_counter_matches_the_database(tmp_path):
    env = base_env(tmp_path)  # no LLM configured: the offline interpreter answers at once
    c.prepare(env, tmp_path)
    cluster = c.start_cluster(env, tmp_path)
    try:
        ids = c.submit(env, 5)
        wait_until(lambda: c.all_terminal(tmp_path / "fortune.sqlite3", ids), 60, what="5 tasks to finish")
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SCRAPE], cwd=ROOT, env=env, capture_output=True, text=True
        )
    finally:
        cluster.stop()
    assert done.returncode == 0, done.stderr
    samples = scrape(done.stdout[done.stdout.index("# HELP") :])
    finished = by_label(samples, "fortune_tasks_finished_total", "status")
    assert {s: n for s, n in finished.items() if n} == db_counts(tmp_path / "fortune.sqlite3") == {"succeeded": 5}
    assert sum(samples["fortune_task_duration_seconds_count"].values()) == 5
