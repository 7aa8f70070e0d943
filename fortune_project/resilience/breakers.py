"""Circuit breakers whose state lives in the Django cache, shared by the web process and every worker.

    get_breaker("llm").call(fn, *args)       # fn's result, or BreakerOpen (.name, .state, .retry_at)
    with get_breaker("llm").guard(): ...     # the same around code that is not one function call

closed → open after `failure_threshold` consecutive failures, or when the optional failure-rate
rule trips; open → half_open once `recovery_timeout` has passed: the next caller, exactly one
across all processes, is the probe (`half_open_calls` trials), whose success closes it and whose
failure re-opens it with a fresh timeout. forced_open and disabled are left only by an operator.

Race-safety, on the database cache as on Redis. Only get/get_many/set/add/delete are used and `add`
is the one atomic primitive (a unique INSERT on the database cache, SET NX on Redis):
- The state is one record whose `epoch` (state number + random suffix) is never reused. A
  transition must win `add("claim:<epoch>")`, re-read the record and write the next one only if
  the epoch is unchanged: two processes never both leave the same state. A process dying between
  claim and write holds transitions back for CLAIM_TTL seconds.
- Half-open permit i is `add("probe:<epoch>:<i>")`: one winner per permit, fresh keys per epoch.
- Consecutive failures: each failure claims the next numbered slot of the current streak with
  `add`, so none is lost (`incr` is get-then-set on the database cache) and exactly one caller
  sees the threshold reached. A success starts a new streak; a failure racing with that success
  may be dropped with the old streak, delaying the opening by that one failure at most.
- Failure-rate window: every process writes only its own summary key (a leased slot), never a
  shared counter; readers add the slots up.
- The cache failing never blocks a call: it goes through, and the error is logged and counted
  per process (`snapshot()["cache"]`).
Caveat: on the database cache, breaker writes made inside a caller's transaction.atomic() are
invisible to other processes until it commits, so call breakers outside transactions.
"""

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.db import DatabaseError, transaction

from fortune_project.resilience.breaker_config import (
    ACTIONS,
    CLAIM_TTL,
    MANUAL_WAIT,
    NAMES,
    RATE_SLOTS,
    SLOT_SCAN,
    SLOT_TTL,
    BreakerConfig,
    BreakerOpen,
    BreakerUnavailable,
    Ignored,
    UnknownBreaker,
    breaker_names,
    check_breakers,
)
from fortune_project.resilience.breaker_state import (
    Permit,
    Record,
    cache_failed,
    describe,
    lease_slot,
    local,
    trouble_report,
)
from fortune_project.resilience.models import TRIPPED_STATES, BreakerEvent
from fortune_project.resilience.models import BreakerState as State
from fortune_project.timefmt import from_timestamp, iso_timestamp, ms

__all__ = [
    "ACTIONS",
    "NAMES",
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerUnavailable",
    "Ignored",
    "UnknownBreaker",
    "all_snapshots",
    "apply_action",
    "breaker_names",
    "breaker_states",
    "check_breakers",
    "get_breaker",
    "tripped",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Breaker:
    clock: Callable[[], float] = time.time  # tests replace it (DRF throttles' `timer` idiom)

    def __init__(self, config: BreakerConfig):
        self.config = config
        self.name = config.name
        self.prefix = f"{settings.BREAKER_KEY_PREFIX}:{config.name}"

    @property
    def cache(self) -> BaseCache:
        return caches[settings.BREAKER_CACHE]

    # --- Calls

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.guard():
            return fn(*args, **kwargs)

    @contextmanager
    def guard(self) -> Iterator[None]:
        permit = self._admit()
        started = self.clock()
        try:
            yield
        except BaseException as exc:
            self._settle(permit, started, exc)
            raise
        self._settle(permit, started, None)

    def is_failure(self, exc: BaseException) -> bool:
        """Whether `exc` counts against the dependency (SystemExit & co. never do: not Exceptions)."""
        return isinstance(exc, self.config.record_exceptions) and not isinstance(exc, self.config.ignore_exceptions)

    def state(self) -> str:
        """The shared state now; `closed` while the cache fails (calls pass then)."""
        try:
            return self._read().state
        except Exception as exc:
            cache_failed(self.name, exc)
            return State.CLOSED.value

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def _read(self) -> Record:
        return Record.load(self.cache.get(self._key("state")))

    # --- Admission

    def _admit(self) -> Permit:
        try:
            return self._permit(self._read())
        except BreakerOpen:
            raise
        except Exception as exc:  # the cache failed: let the call through rather than block the task
            cache_failed(self.name, exc)
            return Permit("pass", Record())

    def _permit(self, record: Record) -> Permit:
        if record.state == State.CLOSED:
            return Permit("normal", record)
        if record.state == State.DISABLED:
            return Permit("pass", record)
        if record.state == State.OPEN:
            assert record.retry_at is not None  # every move to open sets it (_open)
            if self.clock() >= record.retry_at:
                record = self._begin_half_open(record)
        if record.state == State.HALF_OPEN:
            return self._probe_permit(record)
        raise self._rejection(record)

    def _begin_half_open(self, record: Record) -> Record:
        """Whoever wins the claim moves it to half_open; losers are rejected like any open call."""
        new = self._transition(
            record,
            State.HALF_OPEN,
            f"recovery timeout of {self.config.recovery_timeout:g} s passed",
            opened_at=record.opened_at,
            retry_at=self.clock() + self.config.probe_seconds,
            failures=record.failures,
        )
        return new or record

    def _probe_permit(self, record: Record) -> Permit:
        assert record.retry_at is not None  # every move to half_open sets it (_begin_half_open)
        if self.clock() >= record.retry_at:  # the probe never reported (its process died): a failure
            reason = f"no probe result within {self.config.probe_seconds:g} s"
            reopened = self._open(record, reason, record.failures)
            raise self._rejection(reopened if reopened.state == State.OPEN else record)
        ttl = int(self.config.probe_seconds) + CLAIM_TTL + 60
        for trial in range(self.config.half_open_calls):
            if self.cache.add(self._key("probe", record.epoch, trial), os.getpid(), timeout=ttl):
                return Permit("probe", record, trial)
        raise self._rejection(record)

    def _rejection(self, record: Record) -> BreakerOpen:
        retry_at = None if record.state == State.FORCED_OPEN else record.retry_at
        wait = None if retry_at is None else max(0.0, retry_at - self.clock())
        return BreakerOpen(self.name, record.state, from_timestamp(retry_at), wait)

    # --- Outcomes

    def _settle(self, permit: Permit, started: float, exc: BaseException | None) -> None:
        if permit.kind == "pass":
            return
        try:
            if exc is not None and not self.is_failure(exc):
                self._neither(permit)
            elif permit.kind == "probe":
                self._judge_probe(permit, self._failure(exc, started))
            else:
                self._judge_call(permit.record, self._failure(exc, started))
        except Exception as err:  # bookkeeping must never replace the call's own outcome
            cache_failed(self.name, err)

    def _neither(self, permit: Permit) -> None:
        """An ignored outcome says nothing: a probe hands its permit back for the next caller."""
        if permit.kind == "probe":
            self.cache.delete(self._key("probe", permit.record.epoch, permit.trial))

    def _failure(self, exc: BaseException | None, started: float) -> str | None:
        if exc is not None:
            return describe(exc)
        elapsed, slow = self.clock() - started, self.config.slow_call_seconds
        return f"slow call: {elapsed:.2f} s > {slow:g} s" if slow and elapsed > slow else None

    def _judge_call(self, record: Record, failure: str | None) -> None:
        if self.config.failure_rate:
            self._window_add(record, failure is not None)
        if failure is None:
            self._end_streak()
            return
        self._note_failure(failure)
        count = self._add_failure()
        if count >= self.config.failure_threshold:
            self._open(record, f"{count} consecutive failures; last: {failure}", count)
        elif self.config.failure_rate and (verdict := self._rate_verdict(record)):
            self._open(record, f"{verdict}; last: {failure}", count)

    def _judge_probe(self, permit: Permit, failure: str | None) -> None:
        record, trials = permit.record, self.config.half_open_calls
        if failure is not None:
            self._note_failure(failure)
            self._open(record, f"probe failed: {failure}", record.failures + 1)
            return
        self.cache.add(self._key("ok", record.epoch, permit.trial), 1, timeout=SLOT_TTL)
        if len(self.cache.get_many([self._key("ok", record.epoch, i) for i in range(trials)])) >= trials:
            self._transition(record, State.CLOSED, f"{trials} trial call(s) succeeded")

    def _open(self, record: Record, reason: str, failures: int) -> Record:
        now = self.clock()
        new = self._transition(
            record, State.OPEN, reason, opened_at=now, retry_at=now + self.config.recovery_timeout, failures=failures
        )
        return new or self._read()

    def _note_failure(self, failure: str) -> None:
        self.cache.set(self._key("last_failure"), {"at": self.clock(), "error": failure}, timeout=None)

    # --- Consecutive failures: one `add`-claimed slot per failure

    def _streak(self) -> str:
        streak = self.cache.get(self._key("streak"))
        if streak is None:
            self.cache.add(self._key("streak"), secrets.token_hex(6), timeout=None)
            streak = self.cache.get(self._key("streak"))
        return streak or "0"

    def _streak_length(self, streak: str) -> int:
        """Slots filled: from the `last` hint onwards, SLOT_SCAN slots per read until one finds none.

        The hint is whatever claimer wrote it last, so under a storm it may lag far behind (a
        slow claimer of slot 4 writing after the claimer of slot 30): one read is not enough.
        """
        length = self.cache.get(self._key("fail", streak, "last")) or 0
        while True:
            keys = [self._key("fail", streak, n) for n in range(length + 1, length + 1 + SLOT_SCAN)]
            found = len(self.cache.get_many(keys))
            if not found:
                return length
            length += found

    def _add_failure(self) -> int:
        """Claim the next free failure slot of the current streak; its number is the count."""
        streak = self._streak()
        start = self._streak_length(streak) + 1
        for n in range(start, start + SLOT_SCAN * 4):
            if self.cache.add(self._key("fail", streak, n), self.clock(), timeout=SLOT_TTL):
                self.cache.set(self._key("fail", streak, "last"), n, timeout=SLOT_TTL)
                return n
        raise RuntimeError("no failure slot could be claimed")  # the cache refuses writes

    def _end_streak(self) -> None:
        streak = self.cache.get(self._key("streak"))
        if streak is not None and self.cache.get(self._key("fail", streak, 1)) is not None:
            self.cache.set(self._key("streak"), secrets.token_hex(6), timeout=None)

    # --- Failure rate over a sliding window: this process's summary in its own slot

    def _window_add(self, record: Record, failed: bool) -> None:
        size, now = self.config.bucket_seconds, self.clock()
        oldest = int((now - self.config.rate_window) // size)
        with local.lock:  # also orders this process's writes of its summary
            epoch, buckets = local.windows.get(self.prefix, (record.epoch, {}))
            if epoch != record.epoch:  # a new closed period starts with an empty window
                epoch, buckets = record.epoch, {}
            buckets = {b: v for b, v in buckets.items() if b > oldest}
            calls, failures = buckets.get(int(now // size), [0, 0])
            buckets[int(now // size)] = [calls + 1, failures + int(failed)]
            local.windows[self.prefix] = (epoch, buckets)
            slot = lease_slot(self.cache, self.prefix)
            summary = {"epoch": epoch, "buckets": buckets}
            self.cache.set(self._key("rate", slot), summary, timeout=int(self.config.rate_window) + 60)

    def _rate_counts(self, record: Record) -> tuple[int, int]:
        oldest = int((self.clock() - self.config.rate_window) // self.config.bucket_seconds)
        summaries = self.cache.get_many([self._key("rate", i) for i in range(RATE_SLOTS)]).values()
        counts = [v for s in summaries if s.get("epoch") == record.epoch for b, v in s["buckets"].items() if b > oldest]
        return sum(c for c, _ in counts), sum(f for _, f in counts)

    def _rate_verdict(self, record: Record) -> str | None:
        calls, failures = self._rate_counts(record)
        cfg = self.config
        if calls < cfg.rate_min_calls or failures * 100 < cfg.failure_rate * calls:
            return None
        rate = 100 * failures / calls
        return f"failure rate {rate:.0f}% ≥ {cfg.failure_rate:g}% over {cfg.rate_window:g} s ({calls} calls)"

    # --- Transitions

    def _transition(
        self, expected: Record, to: str, reason: str, *, who: str = "", actor=None, **values
    ) -> Record | None:
        """Leave `expected` for `to` unless another process already left it: the new record, or None."""
        if not self.cache.add(self._key("claim", expected.epoch), os.getpid(), timeout=CLAIM_TTL):
            return None
        current = self._read()
        if current.epoch != expected.epoch:
            return None  # our view was older than the claim's lifetime
        gen = current.gen + 1
        new = Record(
            str(to), gen, f"{gen}-{secrets.token_hex(4)}", self.clock(), reason=reason[:300], who=who, **values
        )
        self.cache.set(self._key("state"), asdict(new), timeout=None)
        if to == State.CLOSED:
            self.cache.set(self._key("streak"), secrets.token_hex(6), timeout=None)
        self._announce(current, new, actor)
        return new

    def _announce(self, old: Record, new: Record, actor) -> None:
        level = logging.WARNING if new.state in (State.OPEN, State.FORCED_OPEN) else logging.INFO
        by = f" by {new.who}" if new.who else ""
        log.log(level, "breaker %s: %s -> %s (%s)%s", self.name, old.state, new.state, new.reason, by)
        assert new.since is not None  # _transition stamps every record it writes
        try:
            with transaction.atomic():  # a savepoint: a failed insert must not poison the caller's transaction
                BreakerEvent.objects.create(
                    name=self.name,
                    from_state=old.state,
                    to_state=new.state,
                    reason=new.reason,
                    who=new.who,
                    actor=actor if getattr(actor, "is_authenticated", False) else None,
                    generation=new.gen,
                    created_at=from_timestamp(new.since),
                )
        except DatabaseError as exc:
            log.warning("breaker %s: transition not saved as an event (%s)", self.name, exc)

    # --- Operator actions: they live in the shared cache, so every process obeys at its next call

    def reset(self, who: str = "", actor=None, reason: str = "manual reset") -> dict:
        return self._manual(State.CLOSED, reason, who, actor)

    def force_open(self, who: str = "", actor=None, reason: str = "forced open") -> dict:
        return self._manual(State.FORCED_OPEN, reason, who, actor, opened_at=self.clock())

    def disable(self, who: str = "", actor=None, reason: str = "disabled") -> dict:
        return self._manual(State.DISABLED, reason, who, actor)

    def _manual(self, to: str, reason: str, who: str, actor, **values) -> dict:
        give_up = time.monotonic() + MANUAL_WAIT
        try:
            while not self._transition(self._read(), to, reason, who=who, actor=actor, **values):
                if time.monotonic() > give_up:
                    raise BreakerUnavailable(f"breaker {self.name}: another transition held it for {MANUAL_WAIT} s")
                time.sleep(0.05)  # lost to a concurrent transition: retry on the fresh state
        except BreakerUnavailable:
            raise
        except Exception as exc:
            cache_failed(self.name, exc)
            raise BreakerUnavailable(f"breaker {self.name}: the cache is failing ({describe(exc)})") from exc
        return self.snapshot()

    # --- Reporting

    def snapshot(self) -> dict:
        """The contract's fields (ISO times) plus reason, changed_by, generation, rules and cache health."""
        try:
            record = self._read()
            return self._report(record, self._current_failures(record), self.cache.get(self._key("last_failure")) or {})
        except Exception as exc:
            cache_failed(self.name, exc)
            return {**self._report(Record(), 0, {}), "cache": trouble_report(ok=False)}

    def _current_failures(self, record: Record) -> int:
        if record.state != State.CLOSED:
            return record.failures
        streak = self.cache.get(self._key("streak"))
        return self._streak_length(streak) if streak else 0

    def _report(self, record: Record, failures: int, last: dict) -> dict:
        cfg = self.config
        return {
            "name": self.name,
            "state": record.state,
            "failures": failures,
            "failure_threshold": cfg.failure_threshold,
            "recovery_timeout": ms(cfg.recovery_timeout),  # the contract: durations in ms
            "opened_at": iso_timestamp(record.opened_at),
            "retry_at": iso_timestamp(record.retry_at),
            "last_failure": iso_timestamp(last.get("at")),
            "last_change": iso_timestamp(record.since),
            "last_error": last.get("error"),
            "reason": record.reason or None,
            "changed_by": record.who or None,
            "generation": record.gen,
            "half_open_calls": cfg.half_open_calls,
            "probe_timeout_ms": ms(cfg.probe_seconds),
            "slow_call_ms": ms(cfg.slow_call_seconds) or None,
            "failure_rate": self._rate_report(record) if cfg.failure_rate else None,
            "cache": trouble_report(ok=True),
        }

    def _rate_report(self, record: Record) -> dict:
        calls, failures = self._rate_counts(record) if record.state == State.CLOSED else (0, 0)
        cfg = self.config
        return {
            "threshold": cfg.failure_rate,
            "window_ms": ms(cfg.rate_window),
            "min_calls": cfg.rate_min_calls,
            "calls": calls,
            "failures": failures,
        }


def get_breaker(name: str) -> Breaker:
    """Cheap: build one per use. Raises UnknownBreaker for a name missing from settings.BREAKERS."""
    return Breaker(BreakerConfig.from_settings(name))


def all_snapshots() -> list[dict]:
    return [get_breaker(name).snapshot() for name in breaker_names()]


def breaker_states() -> dict[str, str]:
    """{name: state} in one cache read (the public health view). A failing cache reads closed: calls pass."""
    keys = {f"{settings.BREAKER_KEY_PREFIX}:{name}:state": name for name in breaker_names()}
    try:
        found = caches[settings.BREAKER_CACHE].get_many(list(keys))
    except Exception as exc:
        cache_failed("*", exc)
        found = {}
    return {name: Record.load(found.get(key)).state for key, name in keys.items()}


def apply_action(name: str, action: str, who: str, actor=None, reason: str = "") -> dict:
    """The one operator entry point (API, admin, commands): reset, force_open or disable; the new snapshot."""
    if action not in ACTIONS:
        raise ValueError(f"unknown breaker action {action!r}")
    breaker = get_breaker(name)
    operate = getattr(breaker, action)
    return operate(who=who, actor=actor, reason=reason) if reason else operate(who=who, actor=actor)


def tripped(states: dict[str, str]) -> dict[str, str]:
    """The breakers of `states` that refuse calls now (or let only probes through): the one
    definition of "tripped" that health, the public summary and the alerts share."""
    return {name: state for name, state in states.items() if state in TRIPPED_STATES}
