"""Alerts from the current operations state: small rules over a `Facts` record.

`gather()` reads the state once (breakers, the worker pool, the queue, recent task outcomes, the
sweeper's heartbeat); each rule is a pure function of it, so tests build `Facts` by hand. An
alert's `since` is when it was first seen: first-seen times live in the shared cache so they
survive across evaluations, processes and restarts of the web server, and are forgotten once the
alert clears. Thresholds are settings (README, "Operations").
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat.llm_stats import primary_bypassed_since
from chat.models import ENDED, Status
from chat.rescue import recent_rescues
from chat.stats import backlog, recent_outcomes
from chat.sweeper import HEARTBEAT_KEY
from chat.workers import Liveness, liveness
from fortune_project.resilience.breakers import all_snapshots
from fortune_project.timefmt import iso
from monitoring import probes

WARNING, CRITICAL = "warning", "critical"
FIRST_SEEN_KEY = "ops:alerts:first_seen"


@dataclass
class Alert:
    code: str
    severity: str
    message: str
    subject: str | None = None  # what it is about when a code can fire more than once (a breaker)
    started: datetime | None = None  # when the evidence says it began, if it says
    since: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.code}:{self.subject}" if self.subject else self.code

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message, "since": iso(self.since)} | (
            {"subject": self.subject} if self.subject else {}
        )


@dataclass
class Facts:
    now: datetime
    breakers: list[dict] = field(default_factory=list)
    clusters: int = 0
    live_workers: int = 0
    cluster_error: str | None = None  # the cluster state could not be read
    queued: int = 0
    oldest_queued_age_s: float | None = None
    ended: dict[str, int] = field(default_factory=dict)  # by status, over ALERT_WINDOW
    orphaned: int = 0  # tasks ended past deadline + grace over ALERT_WINDOW
    rescued: int = 0  # tasks re-queued by a rescue over ALERT_WINDOW (chat/rescue.py)
    workers_lost: int = 0  # tasks ended worker_lost over ALERT_WINDOW
    sweeper_age_s: float | None = None
    llm_bypassed_since: datetime | None = None  # fallbacks answering in place of the primary LLM since
    first_seen: dict[str, datetime] = field(default_factory=dict)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


# --- Rules ---------------------------------------------------------------------------------------


def _breaker_alert(b: dict, facts: Facts) -> Alert | None:
    name, state = b["name"], b["state"]
    if state == "disabled":
        return Alert("breaker_disabled", WARNING, f"Breaker {name} is disabled: failures pass unchecked.", name)
    if state == "forced_open":
        who = f" by {b['changed_by']}" if b.get("changed_by") else ""
        return Alert("breaker_open", WARNING, f"Breaker {name} was forced open{who}.", name)
    if state not in ("open", "half_open"):
        return None
    opened = parse_datetime(b["opened_at"]) if b.get("opened_at") else None
    # A failed probe re-opens it with a fresh opened_at: the first-seen time keeps the streak.
    began = min(t for t in (opened, facts.first_seen.get(f"breaker_open:{name}"), facts.now) if t)
    open_for = (facts.now - began).total_seconds()
    critical = open_for > 2 * b["recovery_timeout"] / 1000  # reported in ms, like every API duration
    return Alert(
        "breaker_open",
        CRITICAL if critical else WARNING,
        f"Breaker {name} is {state.replace('_', '-')} (open for {_minutes(open_for)}).",
        name,
        started=opened,
    )


def breaker_alerts(facts: Facts) -> list[Alert]:
    return [a for b in facts.breakers if (a := _breaker_alert(b, facts))]


def worker_alerts(facts: Facts) -> list[Alert]:
    """Judged by the cluster probe, as /health/ and the public summary judge it."""
    probe = probes.judge_cluster(facts.clusters, facts.live_workers, facts.cluster_error)
    if probe.status == probes.DOWN:
        return [Alert("no_workers", CRITICAL, f"No live task cluster ({probe.detail}): queued tasks will not run.")]
    if probe.status == probes.DEGRADED:
        message = f"Only {probe.detail}."
        return [Alert("workers_missing", CRITICAL if not facts.live_workers else WARNING, message)]
    return []


def queue_alerts(facts: Facts) -> list[Alert]:
    found = []
    if facts.queued >= settings.ALERT_QUEUE_BACKLOG:
        critical = facts.queued >= settings.MAX_QUEUED_TASKS
        refusing = " New questions are refused (503)." if critical else ""
        message = f"{facts.queued} tasks are waiting (alert at {settings.ALERT_QUEUE_BACKLOG}).{refusing}"
        found.append(Alert("queue_backlog", CRITICAL if critical else WARNING, message))
    age = facts.oldest_queued_age_s
    if age is not None and age >= settings.ALERT_QUEUE_AGE:
        critical = age >= settings.MAX_QUEUE_AGE
        message = f"The oldest queued task has waited {_minutes(age)} (alert at {_minutes(settings.ALERT_QUEUE_AGE)})."
        started = facts.now - timedelta(seconds=age - settings.ALERT_QUEUE_AGE)
        found.append(Alert("queue_age", CRITICAL if critical else WARNING, message, started=started))
    return found


def _rate_alert(code: str, status: str, limit: float, what: str, facts: Facts) -> list[Alert]:
    total = sum(facts.ended.get(s, 0) for s in ENDED)
    if total < settings.ALERT_MIN_TASKS:
        return []
    part = facts.ended.get(status, 0)
    rate = 100 * part / total
    if rate <= limit:
        return []
    window = _minutes(settings.ALERT_WINDOW)
    message = f"{rate:.0f}% of tasks {what} in the last {window} ({part} of {total}; limit {limit:g}%)."
    return [Alert(code, CRITICAL if rate >= min(100, 2 * limit) else WARNING, message)]


def failure_alerts(facts: Facts) -> list[Alert]:
    return _rate_alert("failure_rate", Status.FAILED, settings.ALERT_FAILURE_RATE, "failed", facts)


def timeout_alerts(facts: Facts) -> list[Alert]:
    return _rate_alert("timeout_rate", Status.TIMED_OUT, settings.ALERT_TIMEOUT_RATE, "timed out", facts)


def orphan_alerts(facts: Facts) -> list[Alert]:
    if not facts.orphaned:
        return []
    message = (
        f"{facts.orphaned} task(s) were ended past their deadline in the last {_minutes(settings.ALERT_WINDOW)}: "
        "their worker hung or died (the sweeper or a reader ended them)."
    )
    return [Alert("orphaned_tasks", WARNING, message)]


def rescue_alerts(facts: Facts) -> list[Alert]:
    """Rescues are the system working, but many in a short while mean workers or clusters keep dying."""
    caught = facts.rescued + facts.workers_lost
    if caught < settings.ALERT_RESCUES:
        return []
    message = (
        f"{caught} task(s) lost their worker in the last {_minutes(settings.ALERT_WINDOW)} "
        f"({facts.rescued} re-run, {facts.workers_lost} ended worker_lost; alert at {settings.ALERT_RESCUES}): "
        "workers or clusters keep dying."
    )
    return [Alert("rescue_spike", CRITICAL if caught >= 2 * settings.ALERT_RESCUES else WARNING, message)]


def sweeper_alerts(facts: Facts) -> list[Alert]:
    age = facts.sweeper_age_s
    if age is None or age <= settings.ALERT_SWEEPER_STALE:
        return []
    return [Alert("sweeper_stale", WARNING, f"The sweeper's last pass was {_minutes(age)} ago.")]


def llm_bypass_alerts(facts: Facts) -> list[Alert]:
    since = facts.llm_bypassed_since
    if since is None or (facts.now - since).total_seconds() <= settings.ALERT_LLM_BYPASSED:
        return []
    bypassed = _minutes((facts.now - since).total_seconds())
    message = f"The primary LLM endpoint has been bypassed for {bypassed}: fallback endpoints answer the readings."
    return [Alert("llm_primary_bypassed", WARNING, message, started=since)]


RULES: tuple[Callable[[Facts], list[Alert]], ...] = (
    breaker_alerts,
    worker_alerts,
    queue_alerts,
    failure_alerts,
    timeout_alerts,
    orphan_alerts,
    rescue_alerts,
    sweeper_alerts,
    llm_bypass_alerts,
)


def evaluate(facts: Facts) -> list[Alert]:
    """Every rule's alerts with `since` set; critical first, then oldest first."""
    found = [alert for rule in RULES for alert in rule(facts)]
    for alert in found:
        alert.since = min(t for t in (facts.first_seen.get(alert.key), alert.started, facts.now) if t)
    return sorted(found, key=lambda a: (a.severity != CRITICAL, a.since, a.key))


# --- State in and out ------------------------------------------------------------------------------


def load_first_seen() -> dict[str, datetime]:
    raw = cache.get(FIRST_SEEN_KEY)
    parsed = {k: parse_datetime(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return {k: v for k, v in parsed.items() if v}


def save_first_seen(found: list[Alert], previous: dict[str, datetime]) -> None:
    """Keep the first-seen time of active alerts only (a cleared alert starts afresh).
    Two processes evaluating at once may both write; they write the same keys and near-equal times."""
    current: dict[str, datetime] = {}
    for a in found:
        assert a.since is not None  # evaluate() sets it on every alert
        current[a.key] = a.since
    if current != previous:
        cache.set(FIRST_SEEN_KEY, {k: v.isoformat() for k, v in current.items()}, timeout=None)


def sweeper_state(now: datetime) -> dict | None:
    """The sweeper's last heartbeat ({"at", "ended"}) with its age; None if it never ran."""
    beat = cache.get(HEARTBEAT_KEY)
    at = parse_datetime(beat.get("at") or "") if isinstance(beat, dict) else None
    return {**beat, "age_s": round((now - at).total_seconds(), 1)} if at else None


def gather(
    now: datetime,
    live: Liveness | None = None,
    queue: dict | None = None,
    breakers: list[dict] | None = None,
) -> Facts:
    """Read the state the rules judge; pass what the caller already has to avoid re-reading it."""
    live = live or liveness(now)
    outcomes = recent_outcomes(now, settings.ALERT_WINDOW)
    rescues = recent_rescues(now, settings.ALERT_WINDOW)
    if queue is not None:
        queued, age_ms = queue["queued"], queue["oldest_queued_age_ms"]
        age_s = age_ms / 1000 if age_ms is not None else None
    else:
        waiting = backlog()
        queued, age_s = waiting.queued, waiting.oldest_age_s(now)
    return Facts(
        now=now,
        breakers=breakers if breakers is not None else all_snapshots(),
        clusters=len(live.clusters),
        live_workers=live.live_workers,
        cluster_error=live.error,
        queued=queued,
        oldest_queued_age_s=age_s,
        ended=outcomes.ended,
        orphaned=outcomes.late,
        rescued=rescues["rescued"],
        workers_lost=rescues["worker_lost"],
        sweeper_age_s=sweeper["age_s"] if (sweeper := sweeper_state(now)) else None,
        llm_bypassed_since=primary_bypassed_since(
            now, lookback=settings.ALERT_LLM_BYPASSED + settings.ALERT_WINDOW, recent=settings.ALERT_WINDOW
        ),
        first_seen=load_first_seen(),
    )


def current_alerts(
    clock: Callable[[], datetime] = timezone.now,
    live: Liveness | None = None,
    queue: dict | None = None,
    breakers: list[dict] | None = None,
) -> list[dict]:
    """The contract's alert list, first-seen times remembered across calls."""
    facts = gather(clock(), live, queue, breakers)
    found = evaluate(facts)
    save_first_seen(found, facts.first_seen)
    return [a.as_dict() for a in found]
