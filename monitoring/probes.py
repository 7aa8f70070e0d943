"""The probes: one small function per thing operations watch, each returning a `Probe`.

/health/ and /health/ready/ (django-health-check), the public health summary, the worker-pool
view and the alerts all judge the same state through these, so they always agree: on whether
the database and cache answer, on which workers are alive (chat.workers.liveness) and on which
breakers are tripped (fortune_project.resilience.breakers.tripped).
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache as default_cache
from django.db import connection

from chat.workers import Liveness, liveness
from fortune_project.resilience.breakers import breaker_states, tripped

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class Probe:
    status: str  # ok, degraded (working, but short of something) or down
    detail: str

    def as_dict(self) -> dict:
        return {"status": self.status, "detail": self.detail}


def database() -> Probe:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Probe(OK, connection.vendor)
    except Exception as exc:
        return Probe(DOWN, type(exc).__name__)


def cache() -> Probe:
    try:
        default_cache.get("health:probe")
        return Probe(OK, type(default_cache).__name__)
    except Exception as exc:
        return Probe(DOWN, type(exc).__name__)


def cluster(live: Liveness | None = None) -> Probe:
    """Down with no live task cluster, degraded when fewer workers live than configured."""
    live = live or liveness()
    return judge_cluster(len(live.clusters), live.live_workers, live.error)


def judge_cluster(clusters: int, workers: int, error: str | None = None) -> Probe:
    if error:
        return Probe(DOWN, error)
    if not clusters:
        return Probe(DOWN, "no live task cluster")
    wanted = settings.FORTUNE_WORKERS
    if workers < wanted:
        return Probe(DEGRADED, f"{workers} of {wanted} workers alive")
    return Probe(OK, f"{clusters} cluster(s), {workers} worker(s)")


def breakers(*names: str, states: dict[str, str] | None = None) -> Probe:
    """Degraded while any of `names` (all breakers when none given) is tripped."""
    states = breaker_states() if states is None else states
    watched = {n: s for n, s in states.items() if not names or n in names}
    bad = tripped(watched)
    if bad:
        return Probe(DEGRADED, ", ".join(f"{name} {state}" for name, state in sorted(bad.items())))
    return Probe(OK, "breakers closed")
