"""Circuit-breaker configuration (settings.BREAKERS), the errors breakers raise, and the check
that refuses a bad configuration at start-up."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

NAMES = ("rag", "llm", "chromadb")  # the contract's breakers; settings.BREAKERS is authoritative
CLAIM_TTL = 5  # seconds a dead claim holder blocks transitions (the database cache rounds to seconds)
SLOT_TTL = 24 * 3600  # failure slots: garbage collection only
SLOT_SCAN = 16  # failure slots read at once past the `last` hint
LEASE_TTL = 3600  # a process's failure-rate slot, renewed at half-life
RATE_SLOTS = 64  # processes that can share a failure-rate window exactly
MANUAL_WAIT = CLAIM_TTL + 2  # how long an operator action retries against concurrent transitions
ACTIONS = ("reset", "force_open", "disable")

class Ignored(Exception):
    """Base for errors of ours that say nothing about a dependency's health: never counted."""


class BreakerOpen(Ignored):
    """The breaker rejected the call without running it (an Ignored, so an outer breaker skips it)."""

    def __init__(self, name: str, state: str, retry_at: datetime | None, retry_after: float | None = None):
        when = f"; retry after {retry_at.isoformat()}" if retry_at else ""
        super().__init__(f"circuit breaker {name} is {state}{when}")
        self.name = name
        self.state = state
        self.retry_at = retry_at
        self.retry_after = retry_after  # seconds, for a Retry-After header; None when forced open


class UnknownBreaker(LookupError):
    def __init__(self, name: str):
        super().__init__(f"unknown circuit breaker {name!r} (known: {', '.join(breaker_names())})")
        self.name = name


class BreakerUnavailable(RuntimeError):
    """An operator action could not be applied (the cache is failing, or a transition is stuck)."""


def _exception_classes(paths: list, where: str) -> tuple[type[BaseException], ...]:
    classes = []
    for path in paths:
        try:
            cls = import_string(path) if isinstance(path, str) else path
        except ImportError as exc:
            raise ImproperlyConfigured(f"{where}: cannot import {path!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ImproperlyConfigured(f"{where}: {path!r} is not an exception class")
        classes.append(cls)
    return tuple(classes)


@dataclass(frozen=True)
class BreakerConfig:
    name: str
    failure_threshold: int
    recovery_timeout: float
    slow_call_seconds: float = 0  # 0 = off
    failure_rate: float = 0  # percent; 0 = off
    rate_window: float = 60
    rate_min_calls: int = 10
    half_open_calls: int = 1
    probe_timeout: float = 0  # how long half_open waits for its trials; 0 = recovery_timeout
    record_exceptions: tuple[type[BaseException], ...] = (Exception,)
    ignore_exceptions: tuple[type[BaseException], ...] = (Ignored,)

    @classmethod
    def from_settings(cls, name: str) -> "BreakerConfig":
        if name not in settings.BREAKERS:
            raise UnknownBreaker(name)
        raw = dict(settings.BREAKERS[name])
        where = f"BREAKERS[{name!r}]"
        record = _exception_classes(raw.pop("record_exceptions", ["builtins.Exception"]), where)
        ignored = raw.pop("ignore_exceptions", getattr(settings, "BREAKER_IGNORED_EXCEPTIONS", []))
        try:
            return cls(
                name, record_exceptions=record, ignore_exceptions=(Ignored, *_exception_classes(ignored, where)), **raw
            )
        except TypeError as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from exc

    @property
    def probe_seconds(self) -> float:
        return self.probe_timeout or self.recovery_timeout

    @property
    def bucket_seconds(self) -> float:
        return max(1.0, self.rate_window / 10)


@checks.register("fortune")
def check_breakers(app_configs, **kwargs) -> list:
    errors = []
    for name in settings.BREAKERS:
        try:
            BreakerConfig.from_settings(name)
        except ImproperlyConfigured as exc:
            errors.append(
                checks.Error(str(exc), hint="See the Circuit breakers section of settings.", id="monitoring.E010")
            )
    if getattr(settings, "BREAKER_CACHE", "default") not in settings.CACHES:
        errors.append(checks.Error("BREAKER_CACHE names no entry of CACHES.", id="monitoring.E011"))
    return errors



def breaker_names() -> list[str]:
    return list(settings.BREAKERS)
