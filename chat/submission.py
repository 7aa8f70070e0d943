"""Accepting a question: admit it, write the task, enqueue its id, answer at once.

Admission (the Idempotency-Key lookup, the per-user cap, the backlog limits) and the insert run
in one transaction that holds the submit gate (chat.models.SubmitGate), so the limits hold
however many submits race: 32 arriving while the backlog is one short of its limit admit one.
A task the queue refuses is taken back whole, so nothing is left for a retry to trip on. On the
ORM broker the queue row is written in the same transaction; on Redis it is pushed after commit.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task
from rest_framework import exceptions, status

from chat import lifecycle
from chat.models import ACTIVE, Conversation, FortuneTask, Message, Status, SubmitGate, TaskId
from chat.stats import backlog
from fortune_project.errors import ServiceUnavailable
from fortune_project.queue_broker import WakeableORM, ring
from rag.models import Poem, Temple

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200  # FortuneTask.idempotency_key's max_length
# Seconds a user at their cap should wait: about the time a worker takes for a reading.
ACTIVE_RETRY_AFTER = 10


class InvalidIdempotencyKey(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_idempotency_key"
    default_detail = f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters."


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used for a different question; use a new key."


class TooManyActiveTasks(exceptions.Throttled):
    default_code = "too_many_active_tasks"


@dataclass
class Question:
    text: str
    language: str = "en"
    temple: Temple | None = None
    poem: Poem | None = None
    conversation: Conversation | None = None


def idempotency_key(header: str | None) -> str | None:
    """The Idempotency-Key header's value (None when absent or blank); 400 when too long, rather
    than cutting it to a prefix that two different keys may share."""
    key = (header or "").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey()
    return key or None


def request_hash(q: Question) -> str:
    """The body as validated (trimmed text, defaults filled in), so a byte-for-byte different
    retry of the same question still matches its key."""
    body = {
        "question": q.text,
        "language": q.language,
        "temple": q.temple.slug if q.temple else None,
        "poem": q.poem.pk if q.poem else None,
        "conversation": q.conversation.pk if q.conversation else None,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_backlog(now=None) -> None:
    """503 overloaded (writing nothing) when the queue is longer or older than its limits."""
    now = now or timezone.now()
    waiting = backlog()
    if waiting.queued >= settings.MAX_QUEUED_TASKS:
        raise ServiceUnavailable("Too many questions are waiting; try again shortly.", "overloaded", retry_after=10)
    age = waiting.oldest_age_s(now)
    if age is not None and age > settings.MAX_QUEUE_AGE:
        raise ServiceUnavailable("The queue is running late; try again shortly.", "overloaded", retry_after=30)


def check_active(user: User, now: datetime) -> None:
    """429 too_many_active_tasks when the user already has MAX_ACTIVE_PER_USER queued or running."""
    cap = settings.MAX_ACTIVE_PER_USER
    if not cap:
        return
    active = FortuneTask.objects.filter(user=user, status__in=ACTIVE)
    if active.count() < cap:
        return
    lifecycle.expire_overdue(now, tasks=active)  # tasks a dead worker left active must not hold the user back
    if active.count() >= cap:
        raise TooManyActiveTasks(
            wait=ACTIVE_RETRY_AFTER,
            detail=f"You already have {cap} questions waiting or in progress; ask again when one has finished.",
        )


def _existing(user: User, key: str, now) -> FortuneTask | None:
    """The task this key named within the idempotency window; an older use frees the key."""
    window_start = now - timedelta(seconds=settings.IDEMPOTENCY_WINDOW)
    FortuneTask.objects.filter(user=user, idempotency_key=key, submitted_at__lt=window_start).update(
        idempotency_key=None
    )
    return FortuneTask.objects.filter(user=user, idempotency_key=key).first()


def _repeat(task: FortuneTask, digest: str) -> FortuneTask:
    """The task a repeated key names; 422 when the key came with another body."""
    if task.request_hash and task.request_hash != digest:  # no hash: a task from before hashes were kept
        raise IdempotencyKeyReused()
    return task


def _hold_gate() -> None:
    """Lock the submit gate until this transaction ends: the counts read after it include every
    submit admitted before. The row is recreated if missing (a flushed test database)."""
    if connection.vendor == "postgresql":
        # Never wait without limit (SQLite has its busy timeout): past it, 503 database_unavailable.
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{settings.CONNECT_TIMEOUT}s"])
    SubmitGate.objects.select_for_update().get_or_create(id=1)


def submit_question(
    user: User, q: Question, idempotency_key: str | None = None, *, per_user_cap: bool = False
) -> tuple[FortuneTask, bool]:
    """Returns (task, created). A repeated Idempotency-Key returns the first task unchanged, or
    raises IdempotencyKeyReused (422) when its body differs. Raises TooManyActiveTasks (429) past
    MAX_ACTIVE_PER_USER when `per_user_cap` (the API; a staff re-run is not held to it), and
    ServiceUnavailable: `overloaded` past the backlog limits (writing nothing), `queue_unavailable`
    when the queue refused the task (what was written is deleted again)."""
    digest = request_hash(q)
    enqueued: list[bool] = []
    try:
        with transaction.atomic():
            _hold_gate()
            now = timezone.now()
            if idempotency_key and (task := _existing(user, idempotency_key, now)):
                return _repeat(task, digest), False
            if per_user_cap:
                check_active(user, now)
            check_backlog(now)
            new = _create(user, q, idempotency_key, digest, now)
            if queue_in_database():
                _enqueue_with(new)
            else:
                opened = q.conversation is None
                transaction.on_commit(lambda: enqueued.append(_enqueue_or_withdraw(new, opened)))
    except IntegrityError:
        if idempotency_key and (task := _existing(user, idempotency_key, timezone.now())):
            return _repeat(task, digest), False  # defensive: the gate already serializes one key's submits
        raise
    # Empty when an outer transaction defers the callback: then it cleans up by itself later.
    if enqueued == [False]:
        raise ServiceUnavailable("The task queue is unavailable; try again shortly.", "queue_unavailable")
    return new, True


def queue_in_database() -> bool:
    """The ORM broker on the tasks' own database: its queue row can share the task's transaction."""
    return settings.Q_CLUSTER.get("orm") == DEFAULT_DB_ALIAS


def _enqueue_with(task: FortuneTask) -> None:
    """ORM broker: the queue row is written in the task's transaction, so both commit or neither
    does, and a submit is one write transaction instead of two (each a turn at SQLite's write
    lock, and the broker's own reconnect). The doorbell rings again once the row is visible: a
    pusher woken by the ring inside `enqueue` may have looked before the commit."""
    if not enqueue(task):
        raise ServiceUnavailable("The task queue is unavailable; try again shortly.", "queue_unavailable")
    if isinstance(broker(), WakeableORM):
        transaction.on_commit(ring)


def _create(user: User, q: Question, key: str | None, digest: str, now) -> FortuneTask:
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
        request_hash=digest,
    )
    Message.objects.create(conversation=conversation, role="user", content=q.text, task=task)
    if q.conversation:
        Conversation.objects.filter(id=conversation.id).update(updated_at=now)
    return task


_brokers: dict[int, Broker] = {}  # pid -> this process's broker


def broker() -> Broker:
    """This process's broker. django_q builds a new one per task otherwise: on the ORM broker that
    closes and reopens the request's database connection, on Redis it opens a new connection."""
    pid = os.getpid()
    if pid not in _brokers:
        _brokers.clear()  # a forked child never shares its parent's
        _brokers[pid] = get_broker()
    return _brokers[pid]


def enqueue(task: FortuneTask) -> bool:
    """Hand the task id and its attempt (never the object) to the worker cluster; False when the
    queue refused. A rescue (chat/rescue.py) enqueues the same task again as its next attempt."""
    try:
        async_task(
            "chat.pipeline.run_fortune_task",
            str(task.id),
            task.attempt,
            timeout=settings.Q_TIMEOUT,
            task_name=f"fortune-{task.id}",
            group="fortune",
            broker=broker(),
        )
    except Exception:
        log.exception("could not enqueue task %s", task.id)
        return False
    return True


def _enqueue_or_withdraw(task: FortuneTask, opened_conversation: bool) -> bool:
    """After commit: enqueue, or take the task back. False when it was taken back (or could not be)."""
    if enqueue(task):
        return True
    try:
        withdrawn = withdraw(task.id, task.conversation_id if opened_conversation else None)
    except DatabaseError:
        log.exception("could not withdraw task %s after the queue refused it", task.id)
        return False
    return not withdrawn  # not withdrawn: a worker has it (the broker took it, then failed to say so)


def withdraw(task_id: TaskId, conversation_id: int | None = None) -> bool:
    """Delete a task no worker was handed, with its message and (given its id) the conversation it
    opened, so a retry with the same Idempotency-Key starts afresh. False when a worker has it."""
    with transaction.atomic():
        # Locked: a worker's claim (UPDATE ... WHERE status='queued') waits, then finds no row.
        task = FortuneTask.objects.select_for_update().filter(id=task_id, status=Status.QUEUED, deliveries=0).first()
        if task is None:
            return False
        Message.objects.filter(task=task).delete()
        task.delete()
        if conversation_id is not None and not Message.objects.filter(conversation_id=conversation_id).exists():
            Conversation.objects.filter(id=conversation_id).delete()
    return True
