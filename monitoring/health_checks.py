"""Checks for django-health-check's /health/ (4.x API: HealthCheck subclasses whose run() raises).

Unlike the public /api/v1/async-chat/health (cached state only, answers in 100 ms), these probe
for real: a ChromaDB heartbeat, the task cluster's heartbeat, the breakers' shared state. Each
check talks to one dependency through one seam, so tests take them down one at a time.
"""

import dataclasses

from django.conf import settings
from django_q.status import Stat
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from monitoring.breakers import breaker_states
from rag import chroma_client

OPEN_STATES = ("open", "half_open", "forced_open")


@dataclasses.dataclass
class ChromaDB(HealthCheck):
    """The retrieval store answers a heartbeat (a server with CHROMA_URL, else the embedded store)."""

    def run(self) -> None:
        try:
            chroma_client.heartbeat(timeout=settings.HEALTH_CHROMA_TIMEOUT)
        except chroma_client.ChromaUnavailable as exc:
            # /health/ is public: the detail (paths, hosts) goes to the log with the traceback.
            raise ServiceUnavailable("no heartbeat") from exc


@dataclasses.dataclass
class TaskCluster(HealthCheck):
    """A Django-Q2 cluster's heartbeat is alive with its configured number of workers."""

    def run(self) -> None:
        try:
            clusters = Stat.get_all()
        except Exception as exc:
            raise ServiceUnavailable(f"cluster state unreadable: {type(exc).__name__}") from exc
        if not clusters:
            raise ServiceUnavailable("no live task cluster")
        workers, wanted = sum(len(c.workers) for c in clusters), settings.FORTUNE_WORKERS
        if workers < wanted:
            raise ServiceWarning(f"{workers} of {wanted} workers alive")


@dataclasses.dataclass
class Breakers(HealthCheck):
    """Every circuit breaker closed (or disabled); an open one is a ServiceWarning, which
    django-health-check 4.x still answers with 500 (hence READY_CHECKS for load balancers)."""

    def run(self) -> None:
        tripped = {name: state for name, state in breaker_states().items() if state in OPEN_STATES}
        if tripped:
            raise ServiceWarning(", ".join(f"{name} {state}" for name, state in sorted(tripped.items())))


# /health/: the whole picture, for monitoring. Any failing or warning check answers 500.
CHECKS = [
    "health_check.checks.Database",
    "health_check.checks.Cache",
    ChromaDB,
    TaskCluster,
    Breakers,
]
# /health/ready/: can this node take questions? For load balancers: ChromaDB, the LLM or the
# workers being down degrades readings or delays them, but pulling every web node would not help.
READY_CHECKS = CHECKS[:2]
