"""A user's own figures over 24 h and all time (the user metrics endpoint)."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from chat.models import FortuneTask
from chat.stats import task_figures


def user_metrics(user: User, now=None) -> dict:
    now = now or timezone.now()
    mine = FortuneTask.objects.filter(user=user)
    return {
        "last_24h": task_figures(mine.filter(submitted_at__gte=now - timedelta(hours=24))),
        "all_time": task_figures(mine),
    }
