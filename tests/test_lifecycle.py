from datetime import timedelta

import pytest
from django.utils import timezone

from chat import lifecycle
from chat.models import FortuneTask, Status
from chat.submission import Question, submit_question


@pytest.fixture
def task(alice, poem) -> FortuneTask:
    return submit_question(alice, Question("Will my job go well?"))[0]


def test_only_one_claim_wins(task):
    assert lifecycle.claim_task(task.id, pid=1) is not None
    assert lifecycle.claim_task(task.id, pid=2) is None
    assert FortuneTask.objects.get(id=task.id).worker_pid == 1


def test_a_claim_past_the_deadline_ends_the_task_timed_out(task):
    late = task.deadline + timedelta(seconds=1)
    assert lifecycle.claim_task(task.id, pid=1, now=late) is None
    task.refresh_from_db()
    assert (task.status, task.error["code"]) == (Status.TIMED_OUT, "deadline_exceeded")


def test_nothing_moves_a_terminal_task(task):
    claimed = lifecycle.claim_task(task.id, pid=1)
    assert lifecycle.cancel_task(task.id)
    assert not lifecycle.move_to_stage(task.id, "interpreting")
    assert not lifecycle.finish_task(claimed, Status.SUCCEEDED, result={"degraded": False})
    assert not lifecycle.cancel_task(task.id)
    assert FortuneTask.objects.get(id=task.id).status == Status.CANCELLED


def test_a_cancel_that_read_the_task_queued_still_wins_after_a_worker_claims_it(task, monkeypatch):
    # The cancel reads the task while queued; a worker claims it before the cancel's update.
    read = FortuneTask.objects.filter(id=task.id).only("id", "submitted_at", "started_at")
    stale = list(read)
    lifecycle.claim_task(task.id, pid=1)
    monkeypatch.setattr("django.db.models.query.QuerySet.only", lambda qs, *fields: stale)
    assert lifecycle.cancel_task(task.id)
    monkeypatch.undo()
    assert FortuneTask.objects.get(id=task.id).status == Status.CANCELLED


def test_finishing_records_timings(task):
    claimed = lifecycle.claim_task(task.id, pid=1)
    lifecycle.finish_task(claimed, Status.SUCCEEDED, result={"degraded": True}, timings={"rag_ms": 5, "llm_ms": 7})
    task.refresh_from_db()
    assert task.timings["rag_ms"] == 5 and task.timings["llm_ms"] == 7
    assert task.timings["queue_ms"] is not None and task.total_ms == task.timings["total_ms"]
    assert task.degraded


def test_the_sweeper_ends_only_tasks_past_deadline_and_grace(task, alice, settings):
    fresh = submit_question(alice, Question("And love?"))[0]
    past_grace = task.deadline + timedelta(seconds=settings.TASK_GRACE + 1)
    FortuneTask.objects.filter(id=fresh.id).update(deadline=past_grace + timedelta(minutes=5))
    assert lifecycle.expire_overdue(now=past_grace) == 1
    assert FortuneTask.objects.get(id=task.id).status == Status.TIMED_OUT
    assert FortuneTask.objects.get(id=fresh.id).status == Status.QUEUED


def test_the_sweeper_leaves_a_task_within_its_grace(task, settings):
    within = task.deadline + timedelta(seconds=settings.TASK_GRACE - 0.5)
    assert lifecycle.expire_overdue(now=within) == 0


def test_a_running_task_swept_stays_timed_out_when_its_worker_finishes_late(task, settings):
    claimed = lifecycle.claim_task(task.id, pid=1)
    lifecycle.expire_overdue(now=timezone.now() + timedelta(seconds=settings.TASK_TIMEOUT + settings.TASK_GRACE + 1))
    assert not lifecycle.finish_task(claimed, Status.SUCCEEDED, result={"degraded": False})
    assert FortuneTask.objects.get(id=task.id).status == Status.TIMED_OUT
