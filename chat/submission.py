"""Accepting a question: write the task, enqueue its id after commit, answer at once."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from chat.models import Conversation, FortuneTask, Message, Status
from chat.stats import backlog
from fortune_project.errors import ServiceUnavailable
from rag.models import Poem, Temple

log = logging.getLogger(__name__)


@dataclass
class Question:
    text: str
    language: str = "en"
    temple: Temple | None = None
    poem: Poem | None = None
    conversation: Conversation | None = None


def check_backlog(now=None) -> None:
    """503 overloaded (writing nothing) when the queue is longer or older than its limits."""
    now = now or timezone.now()
    waiting = backlog()
    if waiting.queued >= settings.MAX_QUEUED_TASKS:
        raise ServiceUnavailable("Too many questions are waiting; try again shortly.", "overloaded", retry_after=10)
    age = waiting.oldest_age_s(now)
    if age is not None and age > settings.MAX_QUEUE_AGE:
        raise ServiceUnavailable("The queue is running late; try again shortly.", "overloaded", retry_after=30)


def _existing(user: User, key: str, now) -> FortuneTask | None:
    """The task this key named within the idempotency window; an older use frees the key."""
    window_start = now - timedelta(seconds=settings.IDEMPOTENCY_WINDOW)
    FortuneTask.objects.filter(user=user, idempotency_key=key, submitted_at__lt=window_start).update(
        idempotency_key=None
    )
    return FortuneTask.objects.filter(user=user, idempotency_key=key).first()


def submit_question(user: User, q: Question, idempotency_key: str | None = None) -> tuple[FortuneTask, bool]:
    """Returns (task, created). A repeated Idempotency-Key returns the first task unchanged."""
    now = timezone.now()
    if idempotency_key and (task := _existing(user, idempotency_key, now)):
        return task, False
    check_backlog(now)
    try:
        with transaction.atomic():
            new = _create(user, q, idempotency_key, now)
            transaction.on_commit(lambda: enqueue(new))
    except IntegrityError:
        if idempotency_key and (task := _existing(user, idempotency_key, now)):
            return task, False  # the same key raced in from another request
        raise
    return new, True


def _create(user: User, q: Question, key: str | None, now) -> FortuneTask:
    conversation = q.conversation or Conversation.objects.create(user=user, title=q.text[:80])
    temple = q.temple or (q.poem.temple if q.poem else None)
    task = FortuneTask.objects.create(
        user=user,
        conversation=conversation,
        question=q.text,
        temple=temple,
        poem=q.poem,
        language=q.language,
        submitted_at=now,
        deadline=now + timedelta(seconds=settings.TASK_TIMEOUT),
        idempotency_key=key,
    )
    Message.objects.create(conversation=conversation, role="user", content=q.text, task=task)
    if q.conversation:
        Conversation.objects.filter(id=conversation.id).update(updated_at=now)
    return task


QUEUE_ERROR = {"code": "queue_unavailable", "message": "The task could not be queued."}


def enqueue(task: FortuneTask) -> None:
    """Hand the task id (never the object) to the worker cluster."""
    try:
        async_task(
            "chat.pipeline.run_fortune_task",
            str(task.id),
            timeout=settings.Q_TIMEOUT,
            task_name=f"fortune-{task.id}",
            group="fortune",
        )
    except Exception:
        log.exception("could not enqueue task %s", task.id)
        FortuneTask.objects.filter(id=task.id, status=Status.QUEUED).update(
            status=Status.FAILED, stage="done", finished_at=timezone.now(), error=QUEUE_ERROR
        )
