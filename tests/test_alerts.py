"""Alert rules, each judged on a hand-made Facts record with a fixed clock."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.status import Stat

from chat.models import Conversation, FortuneTask
from chat.workers import Liveness
from fortune_project.resilience.breakers import all_snapshots, get_breaker
from monitoring import alerts
from monitoring.alerts import Facts

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def breaker(name: str = "llm", state: str = "closed", opened_ago: float | None = None, **extra) -> dict:
    opened = iso(NOW - timedelta(seconds=opened_ago)) if opened_ago is not None else None
    # As breaker snapshots report it: recovery_timeout in ms.
    return {"name": name, "state": state, "recovery_timeout": 60_000, "opened_at": opened, **extra}


def healthy(**changes) -> Facts:
    """All well: one cluster with its 3 workers, an empty queue, nothing failing."""
    base = Facts(now=NOW, breakers=[breaker("rag"), breaker("llm")], clusters=1, live_workers=3)
    return dataclasses.replace(base, **changes)


def codes(facts: Facts) -> dict[str, str]:
    return {a.key: a.severity for a in alerts.evaluate(facts)}


def test_all_well_means_no_alerts():
    assert codes(healthy()) == {}


def test_an_open_breaker_is_a_warning():
    assert codes(healthy(breakers=[breaker("llm", "open", opened_ago=30)])) == {"breaker_open:llm": "warning"}


def test_a_breaker_open_past_twice_its_recovery_timeout_is_critical():
    assert codes(healthy(breakers=[breaker("llm", "open", opened_ago=121)])) == {"breaker_open:llm": "critical"}


def test_a_real_breaker_open_past_twice_its_recovery_timeout_is_critical(db):
    llm = get_breaker("llm")  # recovery 60 s
    llm.clock = lambda: NOW.timestamp() - 121
    for _ in range(llm.config.failure_threshold):
        with pytest.raises(ConnectionError), llm.guard():
            raise ConnectionError("llm down")
    snapshot = next(b for b in all_snapshots() if b["name"] == "llm")
    assert snapshot["state"] == "open"
    assert codes(healthy(breakers=[snapshot])) == {"breaker_open:llm": "critical"}


def test_a_breaker_that_keeps_failing_its_probes_turns_critical_from_when_it_was_first_seen():
    # Each failed probe re-opens it with a fresh opened_at; the first-seen time remembers.
    facts = healthy(
        breakers=[breaker("llm", "half_open", opened_ago=10)],
        first_seen={"breaker_open:llm": NOW - timedelta(seconds=200)},
    )
    [alert] = alerts.evaluate(facts)
    assert (alert.severity, alert.since) == ("critical", NOW - timedelta(seconds=200))


def test_a_forced_open_breaker_warns_and_names_who():
    [alert] = alerts.evaluate(healthy(breakers=[breaker("rag", "forced_open", changed_by="bob (api)")]))
    assert (alert.code, alert.severity) == ("breaker_open", "warning")
    assert "bob (api)" in alert.message


def test_no_live_cluster_is_critical():
    assert codes(healthy(clusters=0, live_workers=0)) == {"no_workers": "critical"}


def test_fewer_workers_than_configured_is_a_warning():
    assert codes(healthy(live_workers=2)) == {"workers_missing": "warning"}


def test_a_backlog_warns_and_turns_critical_where_submit_refuses(settings):
    settings.ALERT_QUEUE_BACKLOG, settings.MAX_QUEUED_TASKS = 10, 20
    assert codes(healthy(queued=9)) == {}
    assert codes(healthy(queued=10)) == {"queue_backlog": "warning"}
    assert codes(healthy(queued=20)) == {"queue_backlog": "critical"}


def test_an_old_queue_head_warns_since_it_crossed_the_limit(settings):
    settings.ALERT_QUEUE_AGE, settings.MAX_QUEUE_AGE = 60, 300
    [alert] = alerts.evaluate(healthy(queued=1, oldest_queued_age_s=90))
    assert (alert.code, alert.severity, alert.since) == ("queue_age", "warning", NOW - timedelta(seconds=30))
    assert codes(healthy(queued=1, oldest_queued_age_s=300)) == {"queue_age": "critical"}


def test_a_failure_rate_over_its_limit_warns_once_enough_tasks_ended(settings):
    settings.ALERT_FAILURE_RATE, settings.ALERT_MIN_TASKS = 20, 5
    assert codes(healthy(ended={"succeeded": 2, "failed": 2})) == {}  # too few to judge
    assert codes(healthy(ended={"succeeded": 8, "failed": 2})) == {}  # 20% is not over 20%
    assert codes(healthy(ended={"succeeded": 7, "failed": 3})) == {"failure_rate": "warning"}
    assert codes(healthy(ended={"succeeded": 6, "failed": 4})) == {"failure_rate": "critical"}


def test_tasks_timing_out_over_their_limit_warn(settings):
    settings.ALERT_TIMEOUT_RATE, settings.ALERT_MIN_TASKS = 10, 5
    assert codes(healthy(ended={"succeeded": 17, "timed_out": 3})) == {"timeout_rate": "warning"}
    assert codes(healthy(ended={"succeeded": 8, "timed_out": 2})) == {"timeout_rate": "critical"}


def test_orphaned_tasks_ended_past_their_deadline_warn():
    [alert] = alerts.evaluate(healthy(orphaned=2))
    assert (alert.code, alert.severity) == ("orphaned_tasks", "warning")
    assert alert.message.startswith("2 task(s)")


def test_a_stale_sweeper_warns_but_a_missing_one_does_not(settings):
    settings.ALERT_SWEEPER_STALE = 120
    assert codes(healthy(sweeper_age_s=None)) == {}
    assert codes(healthy(sweeper_age_s=60)) == {}
    assert codes(healthy(sweeper_age_s=121)) == {"sweeper_stale": "warning"}


def test_critical_alerts_come_first():
    facts = healthy(breakers=[breaker("llm", "open", opened_ago=5)], clusters=0, live_workers=0)
    assert [a.code for a in alerts.evaluate(facts)] == ["no_workers", "breaker_open"]


# --- `since` persists across evaluations (in the shared cache) -------------------------------------


@pytest.fixture
def stopped_cluster(db, monkeypatch):
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: []))


def test_since_is_the_first_time_an_alert_was_seen(stopped_cluster):
    [first] = alerts.current_alerts(clock=lambda: NOW)
    [later] = alerts.current_alerts(clock=lambda: NOW + timedelta(minutes=5))
    assert first["since"] == later["since"] == iso(NOW)


def test_a_cleared_alert_starts_afresh(stopped_cluster):
    alerts.current_alerts(clock=lambda: NOW)
    live = Liveness([{}], [{}, {}, {}])
    assert alerts.current_alerts(clock=lambda: NOW + timedelta(minutes=1), live=live) == []
    [again] = alerts.current_alerts(clock=lambda: NOW + timedelta(minutes=2))
    assert again["since"] == iso(NOW + timedelta(minutes=2))


# --- Facts from the database -----------------------------------------------------------------------


def ended_task(user, status: str, *, past_deadline_s: float, ago_s: float = 60) -> FortuneTask:
    """A task that ended `ago_s` seconds ago, `past_deadline_s` seconds after its deadline."""
    finished = timezone.now() - timedelta(seconds=ago_s)
    deadline = finished - timedelta(seconds=past_deadline_s)
    return FortuneTask.objects.create(
        user=user,
        conversation=Conversation.objects.create(user=user),
        question="q",
        status=status,
        stage="done",
        submitted_at=deadline - timedelta(seconds=120),
        finished_at=finished,
        deadline=deadline,
    )


def test_gather_counts_recent_outcomes_and_tasks_ended_past_their_deadline(alice, stopped_cluster, settings):
    settings.TASK_GRACE, settings.ALERT_WINDOW = 10, 900
    ended_task(alice, "succeeded", past_deadline_s=-60)
    ended_task(alice, "timed_out", past_deadline_s=0)  # the pipeline's own deadline: not an orphan
    ended_task(alice, "timed_out", past_deadline_s=30)  # the sweeper found it: an orphan
    ended_task(alice, "failed", past_deadline_s=-60, ago_s=3600)  # outside the window
    facts = alerts.gather(timezone.now())
    assert facts.ended == {"succeeded": 1, "timed_out": 2}
    assert (facts.orphaned, facts.clusters, facts.live_workers) == (1, 0, 0)
