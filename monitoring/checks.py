"""System checks that refuse configurations known to hang or lose tasks (shared/NOTES.md)."""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

_PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register("fortune")
def check_cluster(app_configs, **kwargs) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    q = settings.Q_CLUSTER
    timeout, retry = q.get("timeout"), q.get("retry")
    if not isinstance(timeout, int):
        errors.append(
            Error(
                f"Q_CLUSTER['timeout'] is {timeout!r}; it must be an int.",
                hint="Django-Q2 passes it to signal.alarm, which fails every task on a float.",
                id="monitoring.E003",
            )
        )
    elif not isinstance(retry, int) or retry <= 2 * timeout:
        errors.append(
            Error(
                f"Q_CLUSTER['retry'] ({retry}) must exceed twice its timeout ({timeout}).",
                hint="retry counts from the broker claim, including time waiting in the cluster's "
                "queue; a smaller value re-delivers slow tasks while they still run.",
                id="monitoring.E001",
            )
        )
    if q.get("queue_limit", 0) > 2 * q.get("workers", 1):
        errors.append(
            Warning(
                "Q_CLUSTER['queue_limit'] is far above the worker count.",
                hint="Claimed tasks wait in memory and age towards `retry`; keep it near the worker count.",
                id="monitoring.W001",
            )
        )
    return errors


@register("fortune")
def check_cache(app_configs, **kwargs) -> list:
    backend = settings.CACHES["default"]["BACKEND"]
    if backend in _PER_PROCESS_CACHES:
        return [
            Error(
                f"The default cache ({backend}) is private to each process.",
                hint="Breakers and worker status must be shared by web and worker processes: use the "
                "database cache (default) or set REDIS_URL.",
                id="monitoring.E002",
            )
        ]
    return []


@register("fortune")
def check_stage_timeouts(app_configs, **kwargs) -> list:
    task = settings.TASK_TIMEOUT
    warnings = []
    for name in ("RAG_TIMEOUT", "LLM_TIMEOUT"):
        if getattr(settings, name) >= task:
            warnings.append(
                Warning(
                    f"{name} ({getattr(settings, name)} s) is not below TASK_TIMEOUT ({task} s).",
                    hint="The stage is capped by the task's deadline anyway, so the stage limit has no effect.",
                    id="monitoring.W002",
                )
            )
    return warnings
