"""Rescuing orphaned tasks (chat/rescue.py) against faked heartbeats; tests/test_rescue_cluster.py
does it with real clusters."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.status import Stat

from chat import lifecycle, rescue, workers
from chat.models import FortuneTask, Stage, Status
from chat.submission import Question, submit_question
from monitoring import alerts, prometheus
from tests.support.stat import HOST, fake_stat


@pytest.fixture
def heartbeats(monkeypatch) -> list:
    """The clusters whose heartbeat is alive; tests change the list as workers die."""
    live: list = []
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: list(live)))
    return live


@pytest.fixture
def enqueued(monkeypatch) -> list:
    """(task id, attempt) of every rescue's enqueue."""
    sent: list = []
    monkeypatch.setattr(rescue, "enqueue", lambda task: sent.append((str(task.id), task.attempt)) or True)
    return sent


@pytest.fixture
def task(alice, poem) -> FortuneTask:
    return submit_question(alice, Question("Will my job go well?"))[0]


@pytest.fixture
def running(task, heartbeats) -> FortuneTask:
    """Alice's task, claimed by worker 12 of the one live cluster."""
    heartbeats.append(fake_stat(11, 12, 13))
    claimed = lifecycle.claim_task(task.id, pid=12, host=HOST)
    assert claimed is not None
    return claimed


def row(task) -> FortuneTask:
    return FortuneTask.objects.get(id=task.id)


def worker_dies(heartbeats, *pids) -> None:
    heartbeats[:] = [fake_stat(*(p for p in (11, 12, 13) if p not in pids))]


# --- Running tasks -------------------------------------------------------------------------------


def test_a_task_whose_worker_stays_missing_is_requeued_as_its_next_attempt(running, heartbeats, enqueued, settings):
    worker_dies(heartbeats, 12)
    now = timezone.now()
    assert rescue.rescue_orphans(now).requeued == 0, "one read is never enough"
    assert rescue.rescue_orphans(now + timedelta(seconds=settings.ORPHAN_AFTER)).requeued == 1
    task = row(running)
    assert (task.status, task.stage, task.attempt, task.worker_pid) == (Status.QUEUED, Stage.QUEUED, 2, None)
    assert task.rescued_at is not None
    assert enqueued == [(str(task.id), 2)]


def test_a_worker_seen_again_starts_its_clock_afresh(running, heartbeats, enqueued, settings):
    start = timezone.now()
    worker_dies(heartbeats, 12)
    rescue.rescue_orphans(start)
    heartbeats[:] = [fake_stat(11, 12, 13)]  # a late heartbeat, not a death
    rescue.rescue_orphans(start + timedelta(seconds=1))
    worker_dies(heartbeats, 12)
    assert rescue.rescue_orphans(start + timedelta(seconds=settings.ORPHAN_AFTER)).requeued == 0
    assert row(running).status == Status.RUNNING
    assert enqueued == []


def test_a_claim_newer_than_the_missing_mark_proves_the_worker_was_alive(running, heartbeats, enqueued, settings):
    worker_dies(heartbeats, 12)
    long_ago = timezone.now() - timedelta(seconds=10 * settings.ORPHAN_AFTER)
    rescue._first_missing({(HOST, 12)}, long_ago)  # an old mark, e.g. of a pid since reused
    assert rescue.rescue_orphans(timezone.now()).requeued == 0


def test_a_whole_cluster_gone_orphans_all_its_tasks(alice, poem, heartbeats, enqueued, settings):
    heartbeats.append(fake_stat(11, 12))
    ids = [submit_question(alice, Question(f"Question {n}?"))[0].id for n in range(2)]
    for pid, task_id in zip((11, 12), ids, strict=True):
        lifecycle.claim_task(task_id, pid=pid, host=HOST)
    heartbeats.clear()
    now = timezone.now()
    rescue.rescue_orphans(now)
    assert rescue.rescue_orphans(now + timedelta(seconds=settings.ORPHAN_AFTER)).requeued == 2
    assert sorted(enqueued) == sorted((str(i), 2) for i in ids)


def test_with_too_little_time_left_the_task_ends_worker_lost_at_once(running, heartbeats, enqueued, settings):
    worker_dies(heartbeats, 12)
    late = running.deadline - timedelta(seconds=settings.RESCUE_MIN_SECONDS - 1)
    rescue.rescue_orphans(late - timedelta(seconds=settings.ORPHAN_AFTER))
    assert rescue.rescue_orphans(late).lost == 1
    task = row(running)
    assert (task.status, task.error["code"], task.attempt) == (Status.TIMED_OUT, "worker_lost", 1)
    assert task.finished_at < task.deadline
    assert enqueued == []


def test_attempts_are_capped(running, heartbeats, enqueued, settings):
    settings.MAX_ATTEMPTS = 1
    worker_dies(heartbeats, 12)
    now = timezone.now()
    rescue.rescue_orphans(now)
    assert rescue.rescue_orphans(now + timedelta(seconds=settings.ORPHAN_AFTER)).lost == 1
    assert row(running).error["code"] == "worker_lost"


def test_nothing_is_judged_while_the_heartbeats_cannot_be_read(running, monkeypatch, settings):
    def unreadable(broker=None):
        raise ConnectionError("cache down")

    monkeypatch.setattr(Stat, "get_all", staticmethod(unreadable))
    now = timezone.now()
    for seconds in (0, settings.ORPHAN_AFTER):
        assert rescue.rescue_orphans(now + timedelta(seconds=seconds)) == rescue.RescuePass()
    assert row(running).status == Status.RUNNING


# --- Attempts fence off the old worker -------------------------------------------------------------


def test_the_worker_of_a_rescued_attempt_writes_nothing(running):
    assert lifecycle.requeue_task(running.id, Status.RUNNING, 1)
    assert lifecycle.claim_task(running.id, pid=12, attempt=1) is None, "a re-delivery of attempt 1"
    second = lifecycle.claim_task(running.id, pid=21, attempt=2, host="other-host")
    assert second is not None
    # The first worker wakes up (it was frozen) and carries on with attempt 1.
    assert not lifecycle.move_to_stage(running.id, Stage.INTERPRETING, 1)
    assert not lifecycle.save_partial_text(running.id, "stale words", 1)
    assert not lifecycle.finish_task(running, Status.SUCCEEDED, result={"interpretation": "stale", "degraded": False})
    assert lifecycle.save_partial_text(running.id, "fresh words", 2)
    assert lifecycle.finish_task(second, Status.SUCCEEDED, result={"interpretation": "fresh", "degraded": False})
    task = row(running)
    assert (task.status, task.result["interpretation"], task.attempt, task.worker_host) == (
        Status.SUCCEEDED,
        "fresh",
        2,
        "other-host",
    )


def test_two_rescuers_racing_requeue_once(running):
    assert lifecycle.requeue_task(running.id, Status.RUNNING, 1)
    assert not lifecycle.requeue_task(running.id, Status.RUNNING, 1)
    assert not lifecycle.end_lost(running.id, 1)
    assert row(running).attempt == 2


# --- Queued tasks ----------------------------------------------------------------------------------


def idle_for(seconds: float, *pids: int) -> None:
    for pid in pids:
        workers.record(workers.IDLE, pid=pid, host=HOST, now=timezone.now() - timedelta(seconds=seconds))


def test_a_long_queued_task_is_rescued_while_a_cluster_idles(task, heartbeats, enqueued, settings):
    heartbeats.append(fake_stat(11, 12, 13))
    idle_for(60, 11, 12, 13)
    now = timezone.now()
    assert rescue.rescue_orphans(now).requeued == 0, "the clock starts at the first idle pass"
    later = now + timedelta(seconds=settings.ORPHAN_QUEUED_AFTER)
    assert rescue.rescue_orphans(later).requeued == 1
    assert enqueued == [(str(task.id), 2)]
    # As its next attempt it starts a clock of its own: the next pass leaves it alone.
    assert rescue.rescue_orphans(later + timedelta(seconds=1)).requeued == 0


def test_the_queued_clock_restarts_when_the_workers_get_busy(task, heartbeats, enqueued, settings):
    heartbeats.append(fake_stat(11))
    idle_for(60, 11)
    now = timezone.now()
    rescue.rescue_orphans(now)
    workers.record(workers.BUSY, task="other", pid=11, host=HOST)
    rescue.rescue_orphans(now + timedelta(seconds=1))
    idle_for(60, 11)
    assert rescue.rescue_orphans(now + timedelta(seconds=settings.ORPHAN_QUEUED_AFTER)).requeued == 0


def test_a_queued_task_waits_unrescued_while_every_worker_is_busy(task, heartbeats, enqueued, settings):
    heartbeats.append(fake_stat(11, 12))
    for pid in (11, 12):
        workers.record(workers.BUSY, task="other", pid=pid, host=HOST)
    now = timezone.now()
    for seconds in (0, settings.ORPHAN_QUEUED_AFTER + 1):
        assert rescue.rescue_orphans(now + timedelta(seconds=seconds)).requeued == 0


def test_a_worker_idle_for_a_moment_between_tasks_is_not_spare_capacity(task, heartbeats, enqueued, settings):
    heartbeats.append(fake_stat(11))
    now = timezone.now()
    for seconds in (0, settings.ORPHAN_QUEUED_AFTER + 1):
        later = now + timedelta(seconds=seconds)
        workers.record(workers.IDLE, pid=11, host=HOST, now=later)  # it just finished a task
        assert rescue.rescue_orphans(later).requeued == 0


def test_a_queued_task_at_its_last_attempt_is_left_to_the_deadline(task, heartbeats, enqueued, settings):
    settings.MAX_ATTEMPTS = 1
    heartbeats.append(fake_stat(11))
    idle_for(60, 11)
    now = timezone.now()
    for seconds in (0, settings.ORPHAN_QUEUED_AFTER + 1):
        assert rescue.rescue_orphans(now + timedelta(seconds=seconds)) == rescue.RescuePass()
    assert row(task).status == Status.QUEUED


# --- Visible ---------------------------------------------------------------------------------------


def test_the_task_shows_its_attempts(as_alice, running):
    url = f"/api/v1/async-chat/tasks/{running.id}"
    assert as_alice.get(url).json()["attempts"] == 1
    lifecycle.requeue_task(running.id, Status.RUNNING, 1)
    assert as_alice.get(url).json()["attempts"] == 2


def test_rescues_are_counted_for_metrics_and_the_dashboard(running, as_bob):
    lifecycle.requeue_task(running.id, Status.RUNNING, 1)
    lifecycle.claim_task(running.id, pid=13, attempt=2, host=HOST)
    lifecycle.end_lost(running.id, 2)
    assert rescue.rescue_totals() == {"rescues": 1, "worker_lost": 1}
    assert rescue.recent_rescues(timezone.now(), 60) == {"rescued": 1, "worker_lost": 1}
    text = prometheus.exposition().decode()
    assert "fortune_task_rescues_total 1.0" in text
    assert "fortune_tasks_worker_lost_total 1.0" in text
    figures = as_bob.get("/api/v1/monitoring/dashboard").json()["tasks"]["rescues"]
    assert figures["last_1h"] == {"rescued": 1, "worker_lost": 1}


def test_a_spike_of_rescues_raises_an_alert(settings):
    settings.ALERT_RESCUES = 3
    quiet = alerts.Facts(now=timezone.now(), rescued=1, workers_lost=1)
    assert alerts.rescue_alerts(quiet) == []
    [spike] = alerts.rescue_alerts(alerts.Facts(now=timezone.now(), rescued=2, workers_lost=1))
    assert (spike.code, spike.severity) == ("rescue_spike", alerts.WARNING)
    [storm] = alerts.rescue_alerts(alerts.Facts(now=timezone.now(), rescued=6))
    assert storm.severity == alerts.CRITICAL
