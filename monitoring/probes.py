"""The probes: one small function per thing operations watch, each returning a `Probe`.

/health/ and /health/ready/ (django-health-check), the public health summary, the worker-pool
view and the alerts all judge the same state through these, so they always agree: on whether
the database and cache answer, on which workers are alive (chat.workers.liveness) and on which
breakers are tripped (fortune_project.resilience.breakers.tripped).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import DEFAULT_DB_ALIAS, connection, connections, router
from django.db.migrations.executor import MigrationExecutor

from chat.workers import Liveness, liveness
from fortune_project.resilience.breakers import breaker_states, tripped

log = logging.getLogger(__name__)
OK, DEGRADED, DOWN = "ok", "degraded", "down"
# Seconds a schema verdict is reused: reading the migration graph takes tens of milliseconds,
# too slow for a load balancer probing every second, and a schema changes only with a deploy.
SCHEMA_TTL = 10.0


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


def unapplied_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def missing_cache_tables() -> list[str]:
    """Tables of configured database caches that do not exist (`createcachetable` makes them)."""
    missing = []
    for alias, config in settings.CACHES.items():
        backend = caches[alias]
        if not isinstance(backend, DatabaseCache):
            continue
        table = config["LOCATION"]  # a database cache's LOCATION is its table's name
        if table not in connections[router.db_for_write(backend.cache_model_class)].introspection.table_names():
            missing.append(table)
    return missing


def _judge_schema() -> Probe:
    try:
        unapplied, missing = unapplied_migrations(), missing_cache_tables()
    except Exception as exc:
        return Probe(DOWN, type(exc).__name__)
    if unapplied or missing:
        # The names go to the log; /health/ is public and says only what is wrong.
        log.error("schema incomplete: unapplied migrations %s, missing cache tables %s", unapplied, missing)
        problems = []
        if unapplied:
            problems.append(f"{len(unapplied)} unapplied migration(s)")
        if missing:
            problems.append("cache table missing")
        return Probe(DOWN, ", ".join(problems) + ": run manage.py migrate")
    return Probe(OK, "migrations applied, cache tables present")


_schema_verdict: tuple[float, Probe] | None = None


def schema(clock: Callable[[], float] = time.monotonic) -> Probe:
    """Down while migrations are unapplied or a database cache's table is missing: such a node
    would answer 500s. Judged at most every SCHEMA_TTL seconds per process."""
    global _schema_verdict
    now = clock()
    if _schema_verdict is None or now - _schema_verdict[0] >= SCHEMA_TTL:
        _schema_verdict = (now, _judge_schema())
    return _schema_verdict[1]


def forget_schema() -> None:
    """Judge the schema afresh on the next call (after a migration, in tests)."""
    global _schema_verdict
    _schema_verdict = None
