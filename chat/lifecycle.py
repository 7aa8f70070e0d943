"""State changes of a FortuneTask. Each is one conditional UPDATE (`... WHERE status=old`), so
two processes racing over a task cannot both win, and nothing moves a terminal task."""

import logging
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from chat.models import ACTIVE, FortuneTask, Stage, Status, TaskId
from fortune_project.timefmt import ms_between

log = logging.getLogger(__name__)


def claim_task(
    task_id: TaskId,
    pid: int,
    now: datetime | None = None,
    *,
    attempt: int | None = None,
    host: str | None = None,
    delivered: bool = False,
) -> FortuneTask | None:
    """Move a queued task to running for this worker; None if someone else has it, it ended, or
    (given `attempt`, as enqueued) it was re-queued as a later attempt since this delivery was sent.

    `delivered`: also count this delivery (count_delivery), in the claim's own UPDATE when it
    wins, so a worker's start costs one write less; a refused claim still counts it."""
    now = now or timezone.now()
    queued = FortuneTask.objects.filter(id=task_id, status=Status.QUEUED, deadline__gt=now)
    counted = {"deliveries": F("deliveries") + 1} if delivered else {}
    won = _of_attempt(queued, attempt).update(
        status=Status.RUNNING,
        stage=Stage.RETRIEVING,
        started_at=now,
        worker_pid=pid,
        worker_host=host or socket.gethostname(),
        **counted,
    )
    if not won:
        if delivered:
            count_delivery(task_id)
        expire_task(task_id, now)  # a queued task found past its deadline ends here
        return None
    return FortuneTask.objects.select_related("poem__temple", "temple", "conversation").get(id=task_id)


def _of_attempt(tasks: QuerySet[FortuneTask], attempt: int | None) -> QuerySet[FortuneTask]:
    """`tasks` narrowed to one attempt; None (a caller from before attempts) leaves them as they are."""
    return tasks if attempt is None else tasks.filter(attempt=attempt)


def _running(task_id: TaskId, attempt: int | None) -> QuerySet[FortuneTask]:
    return _of_attempt(FortuneTask.objects.filter(id=task_id, status=Status.RUNNING), attempt)


def move_to_stage(task_id: TaskId, stage: str, attempt: int | None = None) -> bool:
    """False when the task is no longer running this attempt (cancelled, expired, rescued): the
    worker should stop."""
    return bool(_running(task_id, attempt).update(stage=stage))


def save_partial_text(task_id: TaskId, text: str, attempt: int | None = None) -> bool:
    return bool(_running(task_id, attempt).update(partial_text=text))


def finish_task(
    task: FortuneTask,
    status: str,
    *,
    result: dict | None = None,
    error: dict | None = None,
    timings: dict | None = None,
    now: datetime | None = None,
) -> bool:
    """End a running task (this attempt of it). Returns False if it had already ended some other
    way or was rescued from under this worker."""
    now = now or timezone.now()
    timings = {
        "queue_ms": ms_between(task.submitted_at, task.started_at),
        "rag_ms": None,
        "llm_ms": None,
        **(timings or {}),
        "total_ms": ms_between(task.submitted_at, now),
    }
    won = _running(task.id, task.attempt).update(
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


def _end_active(queryset, status: str, error: dict | None, now: datetime, attempt: int | None = None) -> int:
    """End every active task in `queryset`, one conditional update per task. The update is
    conditional on the task being active, not on the status just read, so a cancel racing a
    worker's claim (queued -> running) still wins; given `attempt`, only while it is that attempt."""
    ended = 0
    for task in queryset.filter(status__in=ACTIVE).only("id", "submitted_at", "started_at"):
        active = FortuneTask.objects.filter(id=task.id, status__in=ACTIVE)
        won = _of_attempt(active, attempt).update(
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


WORKER_LOST_ERROR = {
    "code": "worker_lost",
    "message": "The worker running the task was lost, with too little time or too few attempts left to run it again.",
}


def requeue_task(task_id: TaskId, status: str, attempt: int, now: datetime | None = None) -> bool:
    """Rescue an orphan: `status` (running or queued) with `attempt` N becomes queued with attempt
    N + 1. Only one rescuer wins, and the worker that held attempt N can write nothing more."""
    won = FortuneTask.objects.filter(id=task_id, status=status, attempt=attempt).update(
        status=Status.QUEUED,
        stage=Stage.QUEUED,
        attempt=attempt + 1,
        started_at=None,
        worker_pid=None,
        worker_host="",
        partial_text="",
        rescued_at=now or timezone.now(),
    )
    return bool(won)


def end_lost(task_id: TaskId, attempt: int, now: datetime | None = None) -> bool:
    """End an orphan that cannot be run again: timed_out with `worker_lost`, at once."""
    now = now or timezone.now()
    lost = FortuneTask.objects.filter(id=task_id)
    return bool(_end_active(lost, Status.TIMED_OUT, WORKER_LOST_ERROR, now, attempt=attempt))


def count_delivery(task_id: TaskId) -> None:
    FortuneTask.objects.filter(id=task_id).update(deliveries=F("deliveries") + 1)
