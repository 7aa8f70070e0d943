"""Worker bookkeeping and liveness: which task-cluster workers are alive, and busy with what.

Django-Q2's `Stat` (the cluster heartbeat, a 3 s TTL in the shared cache) says which worker pids
are alive but not whether they are busy (shared/NOTES.md). So each worker records its own state
in the shared cache from Django-Q2's signals (chat/signals.py), and readers join the two:
`Stat` decides who is alive, our record says what it is doing. Records expire (OPS_WORKER_TTL),
so a killed worker's record goes away by itself; it already drops out of view with its cluster's
heartbeat.
"""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.status import Stat

from fortune_project.timefmt import iso, ms_between

log = logging.getLogger(__name__)

KEY_PREFIX = "ops:worker"
FORTUNE_FUNC = "chat.pipeline.run_fortune_task"
IDLE, BUSY = "idle", "busy"


def worker_key(host: str, pid: int) -> str:
    return f"{KEY_PREFIX}:{host}:{pid}"


def _ms_since(stamp: str | None, now: datetime) -> int | None:
    return ms_between(parse_datetime(stamp) if stamp else None, now)


# --- Writing (in the worker process) -----------------------------------------------------------


def func_path(func: object) -> str:
    """Dotted path of a task function, whether Django-Q2 hands us the callable or its name."""
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


def fortune_task_id(func: object, q_task: dict) -> str | None:
    """Our FortuneTask id: the first argument of chat.pipeline.run_fortune_task."""
    if FORTUNE_FUNC not in (func_path(func), func_path(q_task.get("func"))):
        return None
    args = q_task.get("args") or ()
    return str(args[0]) if args else None


def record(
    state: str,
    *,
    task: str | None = None,
    q_task: dict | None = None,
    now: datetime | None = None,
    pid: int | None = None,
    host: str | None = None,
) -> dict:
    """Write a worker's record (by default this process's); returns it."""
    now = now or timezone.now()
    q_task = q_task or {}
    pid, host = pid or os.getpid(), host or socket.gethostname()
    entry = {
        "pid": pid,
        "host": host,
        "state": state,
        "task": task,
        "q_task": q_task.get("id"),
        "q_name": q_task.get("name"),
        "func": func_path(q_task.get("func")) if q_task else None,
        "busy_since": iso(now) if state == BUSY else None,
        "last_seen": iso(now),
    }
    cache.set(worker_key(host, pid), entry, timeout=settings.OPS_WORKER_TTL)
    return entry


def record_busy(func: object, q_task: dict, now: datetime | None = None) -> dict:
    return record(BUSY, task=fortune_task_id(func, q_task), q_task=q_task, now=now)


def record_idle(now: datetime | None = None) -> dict:
    return record(IDLE, now=now)


# --- Reading (anywhere) ------------------------------------------------------------------------


def _cluster(stat: Stat, now: datetime) -> dict:
    return {
        "id": str(stat.cluster_id),
        "host": stat.host,
        "pid": stat.pid,
        "status": str(stat.status),
        "workers": list(stat.workers),
        "task_q_size": stat.task_q_size,
        "reincarnations": stat.reincarnations,
        "uptime_s": int((now - stat.tob).total_seconds()) if stat.tob else None,
        "heartbeat": iso(stat.timestamp),
    }


def live_clusters(now: datetime | None = None) -> list[dict]:
    """Clusters whose heartbeat is alive, oldest first (a stable order for the pages)."""
    now = now or timezone.now()
    clusters = [_cluster(stat, now) for stat in Stat.get_all()]
    return sorted(clusters, key=lambda c: (c["uptime_s"] is None, -(c["uptime_s"] or 0), c["id"]))


def _worker(pid: int, host: str, entry: dict | None, now: datetime) -> dict:
    # No record means idle: a busy record outlives any task (OPS_WORKER_TTL), so only an idle
    # one can have expired (or the worker predates our receivers).
    entry = entry or {"state": IDLE, "task": None, "busy_since": None, "last_seen": None, "q_task": None}
    return {
        "pid": pid,
        "host": host,
        "state": entry["state"],
        "task": entry["task"],
        "busy_since": entry["busy_since"],
        "busy_ms": _ms_since(entry["busy_since"], now),
        "q_task": entry.get("q_task"),
        "last_seen": entry["last_seen"],
    }


@dataclass(frozen=True)
class Liveness:
    """The one answer to "which clusters and workers are alive": /health/, the public health
    summary, the worker-pool view, the alerts and /metrics all read it from `liveness()`."""

    clusters: list[dict]
    workers: list[dict]
    error: str | None = None  # the cluster state could not be read (the cache is failing)

    @property
    def live_workers(self) -> int:
        return len(self.workers)


def liveness(now: datetime | None = None) -> Liveness:
    """Live clusters (by Django-Q2's heartbeat) and their workers with our busy/idle records."""
    now = now or timezone.now()
    try:
        clusters = live_clusters(now)
        return Liveness(clusters, live_workers(clusters, now))
    except Exception as exc:
        log.warning("cluster state unreadable: %r", exc)
        return Liveness([], [], f"cluster state unreadable: {type(exc).__name__}")


def live_workers(clusters: list[dict], now: datetime | None = None) -> list[dict]:
    """The workers of the live clusters, each with its recorded state."""
    now = now or timezone.now()
    pairs = [(c["host"], pid) for c in clusters for pid in c["workers"]]
    entries = cache.get_many([worker_key(host, pid) for host, pid in pairs])
    return [_worker(pid, host, entries.get(worker_key(host, pid)), now) for host, pid in pairs]


# --- Liveness queries for the rescue (chat/rescue.py) ------------------------------------------


def live_worker_ids(live: Liveness) -> set[tuple[str, int]]:
    """(host, pid) of every worker in a live cluster's heartbeat: a task's worker missing from it
    is dead, or its whole cluster is (killed, frozen, cut off), or the heartbeat is late."""
    return {(w["host"], int(w["pid"])) for w in live.workers}


def idle_workers(live: Liveness, now: datetime, settled: float) -> int:
    """Workers idle for at least `settled` seconds in live clusters whose internal queue is empty:
    while any exist, the broker has nothing it can hand them, so a task long queued is lost
    (with Redis, a dead cluster took it with its prefetched tasks). A worker between two tasks
    is idle for milliseconds only; one without a record has been idle past OPS_WORKER_TTL."""
    by_id = {(w["host"], w["pid"]): w for w in live.workers}
    count = 0
    for cluster in live.clusters:
        if cluster.get("task_q_size"):
            continue
        for pid in cluster["workers"]:
            worker = by_id.get((cluster["host"], pid))
            if worker and worker["state"] == IDLE:
                idle_ms = _ms_since(worker["last_seen"], now)
                count += idle_ms is None or idle_ms >= settled * 1000
    return count
