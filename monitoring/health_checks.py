"""Checks for django-health-check's /health/ (4.x API: HealthCheck subclasses whose run() raises).

Unlike the public /api/v1/async-chat/health (cached state only, answers in 100 ms), these probe
for real: a ChromaDB heartbeat, the task cluster's heartbeat, the breakers' shared state. Each
check talks to one dependency through one seam, so tests take them down one at a time.
"""

import dataclasses

from django.conf import settings
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from monitoring import probes
from monitoring.probes import DEGRADED, DOWN, Probe
from rag import chroma_client


@dataclasses.dataclass
class ChromaDB(HealthCheck):
    """The retrieval store answers a heartbeat (a server with CHROMA_URL, else the embedded store)."""

    def run(self) -> None:
        try:
            chroma_client.heartbeat(timeout=settings.HEALTH_CHROMA_TIMEOUT)
        except chroma_client.ChromaUnavailable as exc:
            # /health/ is public: the detail (paths, hosts) goes to the log with the traceback.
            raise ServiceUnavailable("no heartbeat") from exc


def _raise_for(probe: Probe) -> None:
    """django-health-check's way of saying it: down is unavailable, degraded a warning."""
    if probe.status == DOWN:
        raise ServiceUnavailable(probe.detail)
    if probe.status == DEGRADED:
        raise ServiceWarning(probe.detail)


@dataclasses.dataclass
class Database(HealthCheck):
    """The database answers a query (the probe the public summary and the alerts use too)."""

    alias: str = "default"

    def run(self) -> None:
        _raise_for(probes.database())


@dataclasses.dataclass
class Cache(HealthCheck):
    """The shared cache answers a read."""

    alias: str = "default"

    def run(self) -> None:
        _raise_for(probes.cache())


@dataclasses.dataclass
class Schema(HealthCheck):
    """Every migration applied and the database cache's table present (a node without them
    answers 500s: an incomplete deploy, not an outage). Judged every few seconds, not per call."""

    def run(self) -> None:
        _raise_for(probes.schema())


@dataclasses.dataclass
class TaskCluster(HealthCheck):
    """A Django-Q2 cluster's heartbeat is alive with its configured number of workers."""

    def run(self) -> None:
        _raise_for(probes.cluster())


@dataclasses.dataclass
class Breakers(HealthCheck):
    """Every circuit breaker closed (or disabled); a tripped one is a ServiceWarning, which
    django-health-check 4.x still answers with 500 (hence READY_CHECKS for load balancers)."""

    def run(self) -> None:
        _raise_for(probes.breakers())


# /health/: the whole picture, for monitoring. Any failing or warning check answers 500.
CHECKS = [
    Database,
    Cache,
    Schema,
    ChromaDB,
    TaskCluster,
    Breakers,
]
# /health/ready/: can this node take questions? For load balancers: ChromaDB, the LLM or the
# workers being down degrades readings or delays them, but pulling every web node would not help.
READY_CHECKS = [Database, Cache, Schema]
