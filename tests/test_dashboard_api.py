"""The staff-only monitoring API: dashboard, worker-pool, alerts."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.status import Stat

from chat import workers
from chat.models import Conversation, FortuneTask

ENDPOINTS = ("dashboard", "worker-pool", "alerts")


def url(name: str) -> str:
    return f"/api/v1/monitoring/{name}"


def make_task(user, status: str, *, ago: float = 60, queue_s: float | None = 1, total_s: float | None = 3, **fields):
    """A task submitted `ago` seconds ago that waited `queue_s` and ended after `total_s`."""
    submitted = timezone.now() - timedelta(seconds=ago)
    conversation = Conversation.objects.create(user=user, title="q")
    started = submitted + timedelta(seconds=queue_s) if queue_s is not None else None
    finished = submitted + timedelta(seconds=total_s) if total_s is not None else None
    return FortuneTask.objects.create(
        user=user,
        conversation=conversation,
        question="Will my shop do well?",
        status=status,
        submitted_at=submitted,
        started_at=started,
        finished_at=finished,
        total_ms=int(total_s * 1000) if total_s is not None else None,
        deadline=submitted + timedelta(seconds=120),
        **fields,
    )


@pytest.mark.parametrize("name", ENDPOINTS)
def test_anonymous_callers_get_401_as_json(db, name):
    from rest_framework.test import APIClient

    response = APIClient().get(url(name))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_seeker_who_is_not_staff_gets_403(as_alice, name):
    response = as_alice.get(url(name))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_the_dashboard_has_the_whole_picture(as_bob, one_cluster):
    body = as_bob.get(url("dashboard")).json()
    assert set(body) >= {"workers", "queue", "tasks", "breakers", "alerts", "system"}
    assert {b["name"] for b in body["breakers"]} == {"rag", "llm", "chromadb"}
    assert set(body["tasks"]) >= {"last_1h", "last_24h", "series", "latest"}
    assert len(body["tasks"]["series"]) == 15


def test_the_worker_pool_shows_every_worker_and_the_busy_one(as_bob, alice, one_cluster):
    task = make_task(alice, "running", ago=5, total_s=None)
    make_task(alice, "queued", ago=30, queue_s=None, total_s=None)
    workers.record("busy", task=str(task.id), pid=12, host=one_cluster.host)
    body = as_bob.get(url("worker-pool")).json()
    assert body["max_workers"] == 3
    assert [(w["pid"], w["state"]) for w in body["workers"]] == [(11, "idle"), (12, "busy"), (13, "idle")]
    busy = body["workers"][1]
    assert busy["task"] == str(task.id) and busy["busy_since"]
    assert (body["queued"], body["running"]) == (1, 1)
    assert 29_000 <= body["oldest_queued_age_ms"] < 60_000
    assert body["clusters"][0]["workers"] == [11, 12, 13]


def test_task_figures_cover_the_last_hour_and_day(as_bob, alice, one_cluster):
    make_task(alice, "succeeded", ago=60, queue_s=1, total_s=2)
    make_task(alice, "succeeded", ago=120, queue_s=3, total_s=4, degraded=True)
    make_task(alice, "failed", ago=180, queue_s=1, total_s=1)
    make_task(alice, "succeeded", ago=3 * 3600, queue_s=9, total_s=10)
    tasks = as_bob.get(url("dashboard")).json()["tasks"]
    hour, day = tasks["last_1h"], tasks["last_24h"]
    assert (hour["total"], day["total"]) == (3, 4)
    assert hour["by_status"]["succeeded"] == 2 and hour["by_status"]["failed"] == 1
    assert hour["success_rate"] == round(2 / 3, 4)
    assert hour["degraded_rate"] == 0.5
    assert (hour["queue_ms_p50"], hour["queue_ms_p95"]) == (1000, 3000)
    assert (hour["total_ms_p50"], hour["total_ms_p95"]) == (2000, 4000)
    assert hour["throughput_per_min"] == round(3 / 60, 3)
    assert sum(b["finished"] for b in tasks["series"]) == 3
    assert [t["status"] for t in tasks["latest"]] == ["succeeded", "succeeded", "failed", "succeeded"]


def test_alerts_say_when_no_cluster_runs(as_bob, monkeypatch):
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: []))
    body = as_bob.get(url("alerts")).json()
    [alert] = [a for a in body if a["code"] == "no_workers"]
    assert alert["severity"] == "critical" and alert["since"] and alert["message"]


def test_alerts_are_empty_when_all_is_well(as_bob, one_cluster):
    assert as_bob.get(url("alerts")).json() == []
