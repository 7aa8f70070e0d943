"""The breaker state machine, walked with an injected clock on the project's database cache."""

from datetime import datetime
from uuid import uuid4

import pytest
from django.core.cache.backends.base import BaseCache

from fortune_project.resilience.breakers import (
    Breaker,
    BreakerOpen,
    BreakerUnavailable,
    Ignored,
    UnknownBreaker,
    all_snapshots,
    breaker_states,
    check_breakers,
    get_breaker,
)
from fortune_project.resilience.deadlines import DeadlineExceeded, StageTimeout
from fortune_project.resilience.models import BreakerEvent

START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OurValidationError(Ignored):
    pass


class BrokenCache(BaseCache):
    """A cache whose every call fails, like an unreachable Redis."""

    def __init__(self, location, params):
        super().__init__(params)

    def _fail(self, *args, **kwargs):
        raise ConnectionError("cache unreachable")

    get = set = add = delete = get_many = touch = incr = clear = has_key = _fail


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(Breaker, "clock", fake)
    return fake


@pytest.fixture(autouse=True)
def svc(settings, db, clock):
    """A breaker named svc: 3 failures open it for 30 s. Fresh keys per test."""
    settings.BREAKER_KEY_PREFIX = f"test-{uuid4().hex[:8]}"
    settings.BREAKERS = {"svc": {"failure_threshold": 3, "recovery_timeout": 30}}


def configure(settings, **rules) -> Breaker:
    settings.BREAKERS = {"svc": {"failure_threshold": 3, "recovery_timeout": 30, **rules}}
    return get_breaker("svc")


def ok() -> str:
    return "fine"


def boom() -> None:
    raise ConnectionError("refused")


def fail(breaker: Breaker, times: int = 1, exc: type[BaseException] = ConnectionError) -> None:
    for _ in range(times):
        with pytest.raises(exc):
            breaker.call(_raiser(exc))


def _raiser(exc: type[BaseException]):
    def fn():
        raise exc("failed")

    return fn


def trip(breaker: Breaker) -> None:
    fail(breaker, breaker.config.failure_threshold)
    assert breaker.state() == "open"


def transitions(name: str = "svc") -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in BreakerEvent.objects.filter(name=name).order_by("id")]


def test_a_new_breaker_is_closed_and_returns_the_calls_result():
    breaker = get_breaker("svc")

    assert breaker.call(lambda a, b=0: a + b, 2, b=3) == 5
    assert breaker.state() == "closed"
    assert transitions() == []


def test_it_opens_after_the_threshold_of_consecutive_failures():
    breaker = get_breaker("svc")

    fail(breaker, 2)
    assert breaker.state() == "closed"
    assert breaker.snapshot()["failures"] == 2
    fail(breaker)

    assert breaker.state() == "open"
    event = BreakerEvent.objects.get(name="svc")
    assert (event.from_state, event.to_state, event.who) == ("closed", "open", "")
    assert event.reason.startswith("3 consecutive failures; last: ConnectionError")


def test_failures_are_all_counted_when_the_last_claimer_hint_lags_far_behind(settings):
    breaker = configure(settings, failure_threshold=100)
    fail(breaker, 30)
    # Under a storm the hint is written by whichever claimer is slowest, e.g. slot 4's.
    streak = breaker.cache.get(breaker._key("streak"))
    breaker.cache.set(breaker._key("fail", streak, "last"), 4)

    assert breaker.snapshot()["failures"] == 30
    fail(breaker)
    assert breaker.snapshot()["failures"] == 31


def test_a_success_starts_the_count_again():
    breaker = get_breaker("svc")

    fail(breaker, 2)
    breaker.call(ok)
    fail(breaker, 2)

    assert breaker.state() == "closed"
    assert breaker.snapshot()["failures"] == 2


def test_an_open_breaker_rejects_without_calling(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    calls = []

    clock.advance(10)
    with pytest.raises(BreakerOpen) as rejected:
        breaker.call(calls.append, 1)

    assert calls == []
    assert (rejected.value.name, rejected.value.state) == ("svc", "open")
    assert rejected.value.retry_at.timestamp() == START + 30
    assert rejected.value.retry_after == 20


def test_after_the_recovery_timeout_one_probe_runs_and_its_success_closes_it(clock):
    breaker = get_breaker("svc")
    trip(breaker)

    clock.advance(30)
    assert breaker.call(ok) == "fine"

    assert breaker.state() == "closed"
    assert transitions() == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert breaker.snapshot()["failures"] == 0


def test_other_callers_are_rejected_while_the_probe_runs(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    clock.advance(31)

    with breaker.guard():
        with pytest.raises(BreakerOpen) as rejected:
            breaker.call(ok)
        assert rejected.value.state == "half_open"

    assert breaker.state() == "closed"


def test_a_failed_probe_reopens_it_with_a_fresh_timeout(clock):
    breaker = get_breaker("svc")
    trip(breaker)

    clock.advance(30)
    fail(breaker)

    snapshot = breaker.snapshot()
    assert snapshot["state"] == "open"
    assert snapshot["retry_at"] == "2023-11-14T22:14:20Z"  # START + 30 + 30
    assert snapshot["reason"] == "probe failed: ConnectionError: failed"
    clock.advance(29)
    with pytest.raises(BreakerOpen):
        breaker.call(ok)
    assert transitions()[-2:] == [("open", "half_open"), ("half_open", "open")]


def test_half_open_admits_the_configured_number_of_trials_and_closes_when_all_succeed(settings, clock):
    breaker = configure(settings, half_open_calls=2)
    trip(breaker)
    clock.advance(30)

    with breaker.guard():
        with breaker.guard():
            with pytest.raises(BreakerOpen):
                breaker.call(ok)  # a third caller: no permit left
        assert breaker.state() == "half_open"  # one trial of two reported

    assert breaker.state() == "closed"


def test_one_failed_trial_of_several_reopens_it(settings, clock):
    breaker = configure(settings, half_open_calls=2)
    trip(breaker)
    clock.advance(30)

    breaker.call(ok)
    fail(breaker)

    assert breaker.state() == "open"


def test_a_probe_that_never_reports_counts_as_failed_once_the_recovery_timeout_passes(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    clock.advance(30)
    breaker.guard().__enter__()  # a probe whose process died mid-call

    clock.advance(30)
    with pytest.raises(BreakerOpen):
        breaker.call(ok)
    assert breaker.snapshot()["reason"] == "no probe result within 30 s"

    clock.advance(30)
    assert breaker.call(ok) == "fine"
    assert breaker.state() == "closed"


def test_a_longer_probe_timeout_lets_a_slow_probe_close_it(settings, clock):
    breaker = configure(settings, probe_timeout=90)
    trip(breaker)
    clock.advance(30)

    with breaker.guard():
        clock.advance(60)  # past the recovery timeout, within the probe timeout
        with pytest.raises(BreakerOpen):
            breaker.call(ok)

    assert breaker.state() == "closed"


def test_a_probe_ending_in_an_ignored_exception_hands_its_permit_to_the_next_caller(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    clock.advance(30)

    fail(breaker, exc=OurValidationError)
    assert breaker.state() == "half_open"
    breaker.call(ok)

    assert breaker.state() == "closed"


def test_a_probe_killed_by_a_system_exit_hands_its_permit_back(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    clock.advance(30)

    fail(breaker, exc=SystemExit)  # Django-Q2's task timeout
    breaker.call(ok)

    assert breaker.state() == "closed"


def test_slow_calls_count_as_failures_but_still_return_their_result(settings, clock):
    breaker = configure(settings, slow_call_seconds=2)

    def slow():
        clock.advance(2.5)
        return "late"

    assert [breaker.call(slow) for _ in range(3)] == ["late"] * 3

    snapshot = breaker.snapshot()
    assert snapshot["state"] == "open"
    assert snapshot["reason"] == "3 consecutive failures; last: slow call: 2.50 s > 2 s"


def test_a_call_just_under_the_slow_threshold_is_a_success(settings, clock):
    breaker = configure(settings, slow_call_seconds=2)
    fail(breaker, 2)

    breaker.call(lambda: clock.advance(1.9))

    assert breaker.snapshot()["failures"] == 0


def test_excluded_exceptions_neither_count_nor_reset_the_count():
    breaker = get_breaker("svc")

    fail(breaker, 2)
    fail(breaker, 3, exc=OurValidationError)  # an Ignored subclass
    fail(breaker, 3, exc=DeadlineExceeded)  # named in BREAKER_IGNORED_EXCEPTIONS
    assert breaker.snapshot()["failures"] == 2
    fail(breaker)

    assert breaker.state() == "open"


def test_a_stage_timeout_counts():
    breaker = get_breaker("svc")

    for _ in range(3):
        with pytest.raises(StageTimeout):
            breaker.call(_raise_timeout)

    assert breaker.state() == "open"


def _raise_timeout():
    raise StageTimeout("llm", 1.0)


def test_which_exceptions_count_is_configured_per_breaker_by_dotted_path(settings):
    breaker = configure(settings, record_exceptions=["builtins.OSError"], ignore_exceptions=["builtins.TimeoutError"])

    fail(breaker, 3, exc=ValueError)
    fail(breaker, 3, exc=TimeoutError)  # an OSError, but ignored
    assert breaker.state() == "closed"
    fail(breaker, 3, exc=ConnectionRefusedError)

    assert breaker.state() == "open"
    assert breaker.is_failure(OSError()) and not breaker.is_failure(BreakerOpen("x", "open", None))


def test_the_failure_rate_opens_it_once_the_window_holds_enough_calls(settings):
    breaker = configure(settings, failure_threshold=100, failure_rate=50, rate_window=60, rate_min_calls=4)

    breaker.call(ok)
    fail(breaker)
    breaker.call(ok)
    assert breaker.state() == "closed"  # 1 of 3: below the minimum number of calls
    fail(breaker)

    snapshot = breaker.snapshot()
    assert snapshot["state"] == "open"
    assert snapshot["reason"].startswith("failure rate 50% ≥ 50% over 60 s (4 calls)")


def test_the_failure_rate_forgets_calls_older_than_the_window(settings, clock):
    breaker = configure(settings, failure_threshold=100, failure_rate=50, rate_window=60, rate_min_calls=4)
    fail(breaker, 3)  # 3 calls: fewer than the minimum

    clock.advance(120)  # counted with these, 4 of 7 would fail: 57%
    breaker.call(ok)
    breaker.call(ok)
    breaker.call(ok)
    fail(breaker)

    assert breaker.state() == "closed"
    assert breaker.snapshot()["failure_rate"] == {
        "threshold": 50,
        "window_ms": 60_000,
        "min_calls": 4,
        "calls": 4,
        "failures": 1,
    }


def test_forced_open_rejects_every_call_until_an_operator_resets_it(clock):
    breaker = get_breaker("svc")

    breaker.force_open(who="bob (api)")
    clock.advance(3600)
    with pytest.raises(BreakerOpen) as rejected:
        breaker.call(ok)
    assert (rejected.value.state, rejected.value.retry_at) == ("forced_open", None)

    breaker.reset(who="bob (api)")
    assert breaker.call(ok) == "fine"
    assert transitions() == [("closed", "forced_open"), ("forced_open", "closed")]


def test_a_disabled_breaker_lets_everything_through_and_counts_nothing(clock):
    breaker = get_breaker("svc")
    breaker.disable(who="bob (admin)")

    fail(breaker, 10)
    assert breaker.call(ok) == "fine"

    snapshot = breaker.snapshot()
    assert (snapshot["state"], snapshot["failures"], snapshot["last_failure"]) == ("disabled", 0, None)


def test_reset_closes_it_from_every_state_and_records_who(bob, clock):
    breaker = get_breaker("svc")
    trip(breaker)
    breaker.reset(who="bob (api)", actor=bob)
    breaker.disable(who="bob (api)", actor=bob)
    breaker.reset(who="bob (api)", actor=bob)
    breaker.force_open(who="bob (api)", actor=bob)

    snapshot = breaker.reset(who="bob (api)", actor=bob, reason="LLM vendor fixed it")

    assert (snapshot["state"], snapshot["changed_by"], snapshot["reason"]) == (
        "closed",
        "bob (api)",
        "LLM vendor fixed it",
    )
    manual = BreakerEvent.objects.filter(name="svc").exclude(who="")
    assert [(e.to_state, e.actor) for e in manual.order_by("id")] == [
        ("closed", bob),
        ("disabled", bob),
        ("closed", bob),
        ("forced_open", bob),
        ("closed", bob),
    ]


def test_a_reset_clears_the_failure_count():
    breaker = get_breaker("svc")
    fail(breaker, 2)

    breaker.reset(who="test")
    fail(breaker, 2)

    assert breaker.state() == "closed"


def test_a_caller_with_a_stale_view_cannot_win_a_transition_already_made(settings):
    breaker = configure(settings, failure_threshold=1)

    with pytest.raises(ConnectionError):
        with breaker.guard():  # admitted while closed...
            fail(breaker)  # ...then someone else's failure opens it
            raise ConnectionError("late")

    assert transitions() == [("closed", "open")]


def test_an_operator_reset_during_a_probe_wins_and_the_probe_result_is_dropped(clock):
    breaker = get_breaker("svc")
    trip(breaker)
    clock.advance(30)

    with pytest.raises(ConnectionError):
        with breaker.guard():
            breaker.reset(who="bob (api)")
            raise ConnectionError("probe failed after the reset")

    assert breaker.state() == "closed"
    assert transitions()[-2:] == [("open", "half_open"), ("half_open", "closed")]


def test_a_failing_cache_lets_calls_through_and_is_reported(settings):
    settings.CACHES = {**settings.CACHES, "broken": {"BACKEND": "tests.test_breakers.BrokenCache"}}
    settings.BREAKER_CACHE = "broken"
    breaker = get_breaker("svc")

    fail(breaker, 5)
    assert breaker.call(ok) == "fine"

    snapshot = breaker.snapshot()
    assert snapshot["state"] == "closed"
    assert snapshot["cache"]["ok"] is False
    assert snapshot["cache"]["errors"] >= 6
    assert snapshot["cache"]["last_error"] == "ConnectionError: cache unreachable"
    assert breaker_states() == {"svc": "closed"}
    with pytest.raises(BreakerUnavailable):
        breaker.reset(who="bob (api)")


def test_the_snapshot_has_the_contract_fields_as_iso_times(clock):
    breaker = get_breaker("svc")
    trip(breaker)

    snapshot = breaker.snapshot()

    assert {
        "name",
        "state",
        "failures",
        "failure_threshold",
        "recovery_timeout",
        "opened_at",
        "retry_at",
        "last_failure",
        "last_change",
    } <= set(snapshot)
    assert (snapshot["failures"], snapshot["failure_threshold"], snapshot["recovery_timeout"]) == (3, 3, 30_000)
    assert datetime.fromisoformat(snapshot["opened_at"]).timestamp() == START
    assert datetime.fromisoformat(snapshot["retry_at"]).timestamp() == START + 30
    assert snapshot["last_failure"] == snapshot["last_change"] == snapshot["opened_at"] == "2023-11-14T22:13:20Z"
    assert snapshot["last_error"] == "ConnectionError: failed"
    assert snapshot["cache"]["ok"] is True


def test_breaker_states_and_all_snapshots_cover_every_configured_breaker(settings):
    settings.BREAKERS = {
        "rag": {"failure_threshold": 3, "recovery_timeout": 30},
        "llm": {"failure_threshold": 1, "recovery_timeout": 60},
    }
    fail(get_breaker("llm"))

    assert breaker_states() == {"rag": "closed", "llm": "open"}
    assert [s["name"] for s in all_snapshots()] == ["rag", "llm"]


def test_an_unknown_breaker_is_refused():
    with pytest.raises(UnknownBreaker, match="'nope'.*known: svc"):
        get_breaker("nope")


def test_a_bad_exception_path_fails_the_system_check(settings):
    settings.BREAKERS = {"svc": {"failure_threshold": 3, "recovery_timeout": 30, "ignore_exceptions": ["no.Such"]}}

    errors = check_breakers(None)

    assert [e.id for e in errors] == ["monitoring.E010"]
    assert "no.Such" in errors[0].msg
