"""What Django-Q2's Stat.get_all() returns for a live cluster, for tests that fake heartbeats."""

import socket
from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

HOST = socket.gethostname()


def fake_stat(*pids: int, cluster_id: str = "c1", host: str = HOST) -> SimpleNamespace:
    """One live cluster whose workers have these pids."""
    now = timezone.now()
    return SimpleNamespace(
        cluster_id=cluster_id,
        host=host,
        pid=100,
        status="Idle",
        workers=list(pids),
        task_q_size=0,
        reincarnations=0,
        tob=now - timedelta(minutes=5),
        timestamp=now,
    )
