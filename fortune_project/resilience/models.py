from django.conf import settings
from django.db import models
from django.utils import timezone


class BreakerState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


# "Tripped": calls are refused (or only probes pass). The one definition every reader uses.
TRIPPED_STATES = (BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.FORCED_OPEN)


class BreakerEvent(models.Model):
    """One circuit-breaker transition; `who`/`actor` are set for operator actions only.

    The table keeps the name it had when this model lived in `monitoring` (moved without copying data).
    """

    name = models.CharField(max_length=50)
    from_state = models.CharField(max_length=20, choices=BreakerState.choices)
    to_state = models.CharField(max_length=20, choices=BreakerState.choices)
    reason = models.CharField(max_length=300, blank=True)
    who = models.CharField(max_length=150, blank=True, help_text="who acted, e.g. 'bob (api)'; blank = automatic")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generation = models.PositiveIntegerField(default=0, help_text="the breaker's state number after this change")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "monitoring_breakerevent"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["name", "-created_at"], name="breakerevent_name_time")]

    def __str__(self) -> str:
        return f"{self.name}: {self.from_state} → {self.to_state}"
