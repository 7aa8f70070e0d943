"""State changes of a FortuneTask. Each is one conditional UPDATE (`... WHERE status=old`), so
two processes racing over a task cannot both win, and nothing moves a terminal task."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from chat.models import ACTIVE, FortuneTask, Stage, Status, TaskId
from fortune_project.timefmt import ms_between

log = logging.getLogger(__name__)


def claim_task(task_id: TaskId, pid: int, now: datetime | None = None) -> FortuneTask | None:
    """Move a queued task to running for this worker; None if someone else has it or it ended."""
    now = now or timezone.now()
    won = FortuneTask.objects.filter(id=task_id, status=Status.QUEUED, deadline__gt=now).update(
        status=Status.RUNNING, stage=Stage.RETRIEVING, started_at=now, worker_pid=pid
    )
    if not won:
        expire_task(task_id, now)  # a queued task found past its deadline ends here
        return None
    return FortuneTask.objects.select_related("poem__temple", "temple", "conversation").get(id=task_id)


def move_to_stage(task_id: TaskId, stage: str) -> bool:
    """False when the task is no longer running (cancelled, expired): the worker should stop."""
    return bool(FortuneTask.objects.filter(id=task_id, status=Status.RUNNING).update(stage=stage))


def save_partial_text(task_id: TaskId, text: str) -> bool:
    return bool(FortuneTask.objects.filter(id=task_id, status=Status.RUNNING).update(partial_text=text))


def finish_task(
    task: FortuneTask,
    status: str,
    *,
    result: dict | None = None,
    error: dict | None = None,
    timings: dict | None = None,
    now: datetime | None = None,
) -> bool:
    """End a running task. Returns False if it had already ended some other way."""
    now = now or timezone.now()
    timings = {
        "queue_ms": ms_between(task.submitted_at, task.started_at),
        "rag_ms": None,
        "llm_ms": None,
        **(timings or {}),
        "total_ms": ms_between(task.submitted_at, now),
    }
    won = FortuneTask.objects.filter(id=task.id, status=Status.RUNNING).update(
        status=status,
        stage=Stage.DONE,
        finished_at=now,
        result=result,
        error=error,
        timings=timings,
        total_ms=timings["total_ms"],
        degraded=bool(result and result.get("degraded")),
    )
    return bool(won)


def _end_active(queryset, status: str, error: dict | None, now: datetime) -> int:
    """End every active task in `queryset`, one conditional update per task. The update is
    conditional on the task being active, not on the status just read, so a cancel racing a
    worker's claim (queued -> running) still wins."""
    ended = 0
    for task in queryset.filter(status__in=ACTIVE).only("id", "submitted_at", "started_at"):
        won = FortuneTask.objects.filter(id=task.id, status__in=ACTIVE).update(
            status=status,
            stage=Stage.DONE,
            finished_at=now,
            error=error,
            timings={
                "queue_ms": ms_between(task.submitted_at, task.started_at or now),
                "rag_ms": None,
                "llm_ms": None,
                "total_ms": ms_between(task.submitted_at, now),
            },
            total_ms=ms_between(task.submitted_at, now),
        )
        ended += won
    return ended


def cancel_task(task_id: TaskId, now: datetime | None = None) -> bool:
    cancelled = _end_active(FortuneTask.objects.filter(id=task_id), Status.CANCELLED, None, now or timezone.now())
    return bool(cancelled)


DEADLINE_ERROR = {"code": "deadline_exceeded", "message": "The task did not finish before its deadline."}


def expire_task(task_id: TaskId, now: datetime | None = None) -> bool:
    """End one active task whose deadline has passed (claim found it late)."""
    now = now or timezone.now()
    overdue = FortuneTask.objects.filter(id=task_id, deadline__lte=now)
    return bool(_end_active(overdue, Status.TIMED_OUT, DEADLINE_ERROR, now))


def expire_overdue(now: datetime | None = None, tasks: QuerySet[FortuneTask] | None = None) -> int:
    """End every task (of `tasks`, default all) still active past its deadline plus grace: its
    worker hung, died or was killed without a trace (shared/NOTES.md: Django-Q2's guard can
    leave no Failure row)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TASK_GRACE)
    tasks = FortuneTask.objects.all() if tasks is None else tasks
    ended = _end_active(tasks.filter(deadline__lt=cutoff), Status.TIMED_OUT, DEADLINE_ERROR, now)
    if ended:
        log.warning("ended %d overdue task(s)", ended)
    return ended


def count_delivery(task_id: TaskId) -> None:
    FortuneTask.objects.filter(id=task_id).update(deliveries=F("deliveries") + 1)
