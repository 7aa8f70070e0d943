import uuid

from django.conf import settings
from django.db import models

from rag.models import LANGUAGES, Poem, Temple

# A FortuneTask's primary key as callers hold it: the UUID itself, or its text (queue args, URLs).
TaskId = str | uuid.UUID


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    ROLES = (("user", "user"), ("assistant", "assistant"))

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=ROLES)
    content = models.TextField()
    task = models.ForeignKey("FortuneTask", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)
ACTIVE = (Status.QUEUED, Status.RUNNING)
# Ended by the system (not by the user's cancel): the denominators of success and failure rates.
ENDED = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT)


class Stage(models.TextChoices):
    QUEUED = "queued"
    RETRIEVING = "retrieving"
    INTERPRETING = "interpreting"
    SAVING = "saving"
    DONE = "done"


class FortuneTask(models.Model):
    """One question's trip through the pipeline. Status moves only by conditional updates
    (chat/lifecycle.py), so a late or re-delivered worker can never move a terminal task."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="tasks")
    question = models.TextField()
    temple = models.ForeignKey(Temple, null=True, blank=True, on_delete=models.SET_NULL)
    poem = models.ForeignKey(Poem, null=True, blank=True, on_delete=models.SET_NULL)
    language = models.CharField(max_length=2, choices=LANGUAGES, default="en")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.QUEUED)
    submitted_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    partial_text = models.TextField(blank=True, default="")
    degraded = models.BooleanField(default=False)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    # sha256 of the submitted body, normalised: the same key with another body is refused (422).
    request_hash = models.CharField(max_length=64, blank=True, default="")
    # How often a worker was handed this task; more than 1 means a re-delivery.
    deliveries = models.PositiveIntegerField(default=0)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    # The claiming worker's host: liveness is judged by (host, pid) against the cluster heartbeats.
    worker_host = models.CharField(max_length=255, blank=True, default="")
    # Which run this is: a rescue (chat/rescue.py) re-queues an orphan as attempt + 1, and every
    # later write is conditional on the attempt, so a worker of an earlier one writes nothing.
    attempt = models.PositiveIntegerField(default=1)
    # When it was last re-queued by a rescue (None: never): the rescue figures and alert count these.
    rescued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="task_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["status", "deadline"]),
            models.Index(fields=["user", "-submitted_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class SubmitGate(models.Model):
    """One row every submit locks (SELECT ... FOR UPDATE) before it counts and inserts, so the
    backlog limits and the per-user cap hold when submits race: on PostgreSQL each transaction
    sees the others' commits only once it holds the lock. SQLite's IMMEDIATE transactions
    already serialize writers (there FOR UPDATE is left out). Created by migration 0002."""

    id = models.PositiveSmallIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"submit gate {self.pk}"
