"""A breaker's shared state record and the bookkeeping each process keeps for itself (cache
trouble, failure-rate windows, slot leases)."""

import logging
import os
import secrets
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field, fields

from django.core.cache import BaseCache

from fortune_project.resilience.breaker_config import LEASE_TTL, RATE_SLOTS
from fortune_project.resilience.models import BreakerState as State
from fortune_project.timefmt import iso_timestamp

log = logging.getLogger(__name__)


@dataclass
class Record:
    state: str = State.CLOSED.value
    gen: int = 0
    epoch: str = "initial"  # claims are keyed by it, so it must never repeat
    since: float | None = None
    opened_at: float | None = None
    retry_at: float | None = None  # open: when the probe may start; half_open: the trials' deadline
    failures: int = 0
    reason: str = ""
    who: str = ""

    @classmethod
    def load(cls, raw: object) -> "Record":
        if not isinstance(raw, dict):
            return cls()  # never written (or culled): closed
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class Permit:
    kind: str  # "normal", "probe", or "pass" (disabled or cache failing: nothing is recorded)
    record: Record
    trial: int = 0  # a probe's permit number


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


# --- Process-local bookkeeping: cache trouble, failure-rate windows, slot leases ---------------


@dataclass
class _CacheTrouble:
    errors: int = 0
    last_error: str = ""
    last_at: float | None = None
    logged_at: float = float("-inf")


@dataclass
class _Local:
    """This process's own bookkeeping; a forked child starts afresh (see _after_fork)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    windows: dict[str, tuple[str, dict[int, list[int]]]] = field(default_factory=dict)  # prefix -> (epoch, buckets)
    leases: dict[str, tuple[int, str, float]] = field(default_factory=dict)  # prefix -> (slot, token, renewed at)


local = _Local()
_trouble = _CacheTrouble()


def _after_fork() -> None:
    """Django-Q forks its workers: a child must not report its parent's calls as its own."""
    local.lock = threading.Lock()
    local.windows.clear()
    local.leases.clear()


os.register_at_fork(after_in_child=_after_fork)


def cache_failed(name: str, exc: Exception) -> None:
    with local.lock:
        _trouble.errors += 1
        _trouble.last_error = describe(exc)
        _trouble.last_at = time.time()
        quiet = time.monotonic() - _trouble.logged_at < 30
        if not quiet:
            _trouble.logged_at = time.monotonic()
    if not quiet:  # one line per 30 s: a dead cache would otherwise log on every call
        log.warning(
            "breaker %s: cache failing, letting calls through (%s; %d so far)", name, describe(exc), _trouble.errors
        )


def trouble_report(ok: bool) -> dict:
    return {
        "ok": ok,
        "errors": _trouble.errors,
        "last_error": _trouble.last_error or None,
        "last_error_at": iso_timestamp(_trouble.last_at),
    }


def lease_slot(cache: BaseCache, prefix: str) -> int:
    """This process's failure-rate slot, leased with `add` so no two live processes share one."""
    slot, token, renewed = local.leases.get(prefix, (-1, "", 0.0))
    if slot >= 0 and time.monotonic() - renewed < LEASE_TTL / 2:
        return slot
    if slot >= 0 and cache.get(f"{prefix}:lease:{slot}") == token:
        cache.set(f"{prefix}:lease:{slot}", token, timeout=LEASE_TTL)
    else:
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        slot = next((i for i in range(RATE_SLOTS) if cache.add(f"{prefix}:lease:{i}", token, timeout=LEASE_TTL)), -1)
        if slot < 0:
            log.warning("breaker %s: all %d failure-rate slots leased; sharing one", prefix, RATE_SLOTS)
            slot = zlib.crc32(token.encode()) % RATE_SLOTS
    local.leases[prefix] = (slot, token, time.monotonic())
    return slot

