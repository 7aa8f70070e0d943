"""The failure drills of `chaos/run`. Each is scripted and bounded, on loopback, against a running
bench System (bench/harness.py), and ends with the same three checks:

- lost: an accepted task (202) that is not terminal once its deadline + grace (+ one sweep and a
  little slack) has passed, or that the API no longer knows;
- late: a task that ended after deadline + grace + one sweep interval + 1.5 s of slack (the
  sweeper's pass and the clocks' granularity);
- the API answered throughout: a prober process asked for the public health and a task every
  100 ms (two clients) during the drill; every probe must get JSON with 200 (or a clean 503
  with Retry-After) within 5 s, and every submit the drill made is either accepted (202) or
  refused cleanly (429 or 503, JSON, Retry-After).

A killed worker's task may be rescued (re-run) and succeed, or be ended `timed_out` by deadline +
grace: both pass. Drill-specific checks (the breaker opened and then closed by itself, tasks
degraded and recovered) add to the verdict.
"""

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench.benchmarks import parse_time
from bench.harness import PYTHON, ROOT, TERMINAL, System, llm_pieces, wait_until
from bench.load import Record, run_load

RAG_REASONS = {"rag_unavailable", "rag_breaker_open", "poem_not_indexed"}


@dataclass
class Outcome:
    drill: str
    profile: str
    tasks: int = 0
    lost: int = 0
    late: int = 0
    api_p99_ms: float | None = None
    api_errors: int = 0
    verdict: str = "pass"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.verdict = "FAIL"
        self.notes.append(why)


@dataclass
class Plan:
    short: bool
    flood: int = 2000
    storm_seconds: float = 20
    storm_clients: int = 32
    stream_seconds: float = 8

    @classmethod
    def make(cls, short: bool) -> "Plan":
        return cls(short=True, flood=300, storm_seconds=5, stream_seconds=4) if short else cls(short=False)


# Settings the drills run with: short deadlines so a drill ends in seconds, breakers that recover
# within a drill, a backlog limit the flood can reach.
CHAOS_ENV = {
    "TASK_TIMEOUT": "12",
    "TASK_GRACE": "3",
    "SWEEP_INTERVAL": "0.5",
    "LLM_TIMEOUT": "4",
    "LLM_CHUNK_TIMEOUT": "2",
    "RAG_TIMEOUT": "3",
    "BREAKER_LLM_THRESHOLD": "3",
    "BREAKER_LLM_RECOVERY": "3",
    "BREAKER_RAG_RECOVERY": "3",
    "BREAKER_CHROMADB_RECOVERY": "3",
    "MAX_QUEUED_TASKS": "150",
}


class Prober:
    """Two clients asking for health and a task every 100 ms, from a process of their own
    (chaos/probe.py), from the start of a drill until join() (or `seconds` at most)."""

    def __init__(self, s: System, seconds: float):
        spec = {
            "port": s.web_port,
            "tokens": s.tokens,
            "mix": ["health", "get"],
            "clients": 2,
            "first_client": 0,
            "duration": seconds,
            "max_requests": 100_000,
            "timeout": 5,
            "rate": 10,
            "question": None,
        }
        self.seconds = seconds
        self.popen = subprocess.Popen(
            [PYTHON, "-m", "chaos.probe", json.dumps(spec)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )

    def join(self) -> list[Record]:
        self.popen.send_signal(signal.SIGTERM)
        try:
            out, _ = self.popen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            out, _ = self.popen.communicate()
        return [Record(*row) for row in json.loads(out or "[]")]


class Drill:
    """What every drill does around its own script: probe the API, track accepted tasks, judge."""

    def __init__(self, s: System, name: str, seconds: float):
        self.s, self.outcome = s, Outcome(name, s.profile)
        self.accepted: list[tuple[str, str]] = []
        self.started = time.monotonic()
        self.prober = Prober(s, seconds)
        env = s.env()
        self.grace = float(env["TASK_GRACE"])
        self.sweep = float(env["SWEEP_INTERVAL"])
        self.refusals: list[Record] = []

    def submit(
        self, count: int, clients: int = 4, rate: float = 0, processes: int = 1, seconds: float = 20
    ) -> list[Record]:
        records = run_load(
            self.s.web_port,
            self.s.tokens,
            mix=["submit"],
            processes=processes,
            clients=min(clients, count),
            duration=max(seconds, count / rate * 2 if rate else seconds),
            max_requests=count,
            rate=rate,
            timeout=10,
        )
        for r in records:
            if r.status == 202 and r.task:
                self.accepted.append((r.task, self.s.tokens[r.user % len(self.s.tokens)]))
            else:
                self.refusals.append(r)
        return records

    def stream(self, seconds: float, rate: float = 2.0) -> list[Record]:
        """Submits at `rate`/s for `seconds` (one client)."""
        return self.submit(max(1, int(seconds * rate)), clients=1, rate=rate)

    def finish(self) -> Outcome:
        """Wait for every accepted task to end (bounded by the last deadline + grace) and judge."""
        o = self.outcome
        tasks = self._settle()
        o.tasks = len(tasks)
        slack = self.grace + self.sweep + 1.5
        worst = 0.0
        for task in tasks.values():
            status, end, deadline = (
                task.get("status"),
                parse_time(task.get("finished_at")),
                parse_time(task.get("deadline")),
            )
            if status not in TERMINAL:
                o.lost += 1
            elif end and deadline and end > deadline + slack:
                o.late += 1
                worst = max(worst, end - deadline - self.grace)
        probes = self.prober.join()
        bad = [r for r in probes if not (r.status == 200 or (r.status == 503 and r.retry_after and r.json_body))]
        o.api_errors = len(bad)
        o.api_p99_ms = stats.rounded(stats.percentile([r.ms for r in probes], 99))
        o.details["probes"] = len(probes)
        o.details["statuses"] = _statuses(tasks.values())
        o.notes.append("ended " + ", ".join(f"{k} {v}" for k, v in sorted(o.details["statuses"].items())))
        unclean = [r for r in self.refusals if not (r.status in (429, 503) and r.retry_after and r.json_body)]
        o.details["unclean_refusals"] = _statuses_of(unclean)
        if unclean:
            o.fail(f"{len(unclean)} submit(s) refused other than by a clean 429/503: {_statuses_of(unclean)}")
        if o.lost:
            o.fail(f"{o.lost} accepted task(s) not terminal after deadline + grace")
        if o.late:
            o.details["latest_past_deadline_plus_grace_s"] = round(worst, 1)
            o.fail(f"{o.late} task(s) ended later than deadline + grace (the latest by {worst:.1f} s)")
        if bad:
            o.fail(f"{len(bad)} of {len(probes)} API probes unanswered or failing: {_statuses_of(bad)}")
        if not probes:
            o.fail("the API prober recorded nothing")
        o.seconds = round(time.monotonic() - self.started, 1)
        return o

    def _settle(self) -> dict[str, dict]:
        if not self.accepted:
            return {}
        # Every task was accepted by now, so its deadline is at most TASK_TIMEOUT from now.
        bound = float(self.s.env()["TASK_TIMEOUT"]) + self.grace + 2 * self.sweep + 3
        return self.s.wait_terminal(self.accepted, timeout=bound)


def _statuses(tasks: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[str(t.get("status"))] = counts.get(str(t.get("status")), 0) + 1
    return counts


def _statuses_of(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        key = f"{r.status} {r.code or ''}".strip()
        counts[key] = counts.get(key, 0) + 1
    return counts


def reasons(task: dict) -> set[str]:
    return set(((task.get("result") or {}).get("degraded_reasons")) or [])


def busy_worker(s: System) -> dict | None:
    mine = set(s.cluster_worker_pids())
    return next((w for w in s.workers() if w.get("state") == "busy" and w.get("task") and int(w["pid"]) in mine), None)


def llm_seconds(s: System, seconds: float) -> None:
    s.llm(mode="ok", chunk_delay=seconds / llm_pieces())


# --- The drills -------------------------------------------------------------------------------


def worker_kill(s: System, plan: Plan) -> Outcome:
    """SIGKILL a worker in the middle of a task (LLM answering in 3 s)."""
    llm_seconds(s, 3)
    d = Drill(s, "worker SIGKILL mid-task", 300)
    d.submit(6, clients=6)
    worker = wait_until(lambda: busy_worker(s), 20, interval=0.1, what="a busy worker")
    os.kill(int(worker["pid"]), signal.SIGKILL)
    d.outcome.details["killed"] = {"pid": worker["pid"], "task": worker["task"]}
    o = d.finish()
    killed = next((s.task(t, tok) for t, tok in d.accepted if t == worker["task"]), None)
    if killed is None:
        o.fail("the killed worker's task was not one of ours")
    else:
        o.details["killed_task"] = {"status": killed.get("status"), "error": killed.get("error")}
        o.notes.append(f"killed task ended {killed.get('status')}")
    try:
        wait_until(lambda: len(s.cluster_worker_pids()) >= int(s.env().get("FORTUNE_WORKERS", "3")), 20)
    except TimeoutError:
        o.fail("the cluster did not replace the killed worker within 20 s")
    s.llm(mode="ok", chunk_delay=0)
    return o


def llm_hang(s: System, plan: Plan) -> Outcome:
    """The LLM accepts the call and never answers: tasks fall back to the offline reading."""
    s.llm(mode="hang")
    d = Drill(s, "LLM hang", 300)
    d.submit(6, clients=6)
    o = d.finish()
    s.llm(mode="ok", chunk_delay=0)
    tasks = [s.task(t, tok) for t, tok in d.accepted]
    succeeded = [t for t in tasks if t.get("status") == "succeeded"]
    fallback = [t for t in succeeded if reasons(t) & {"llm_timeout", "llm_breaker_open"}]
    o.notes.append(f"{len(fallback)}/{len(tasks)} answered by the offline reader, the rest ended by their deadline")
    if len(fallback) != len(succeeded):
        o.fail("a task succeeded without the offline reader while the LLM hung")
    return o


def llm_error_storm(s: System, plan: Plan) -> Outcome:
    """The LLM answers 500 to everything: the llm breaker opens; when the fake heals, it closes by
    itself (a probe after BREAKER_LLM_RECOVERY succeeds), with no operator action."""
    s.breaker("llm", "reset")
    s.llm(mode="error")
    d = Drill(s, "LLM error storm", 300)
    seen: list[tuple[float, str]] = []

    def watch(until: Callable[[], bool], seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            state = s.breakers().get("llm", "?")
            if not seen or seen[-1][1] != state:
                seen.append((round(time.monotonic() - d.started, 1), state))
            if until():
                return True
            time.sleep(0.2)
        return False

    feeder = threading.Thread(target=d.stream, args=(plan.stream_seconds, 2.0), daemon=True)
    feeder.start()
    opened = watch(lambda: seen[-1][1] == "open", plan.stream_seconds + 10)
    feeder.join()
    s.llm(mode="ok", chunk_delay=0)
    feeder = threading.Thread(target=d.stream, args=(10.0, 1.0), daemon=True)
    feeder.start()
    closed = opened and watch(lambda: seen[-1][1] == "closed", 15)
    feeder.join()
    o = d.finish()
    o.details["breaker_states"] = seen
    o.notes.append("states: " + " -> ".join(f"{state}@{t}s" for t, state in seen))
    if not opened:
        o.fail("the llm breaker never opened")
    elif not closed:
        o.fail("the llm breaker did not close by itself after the LLM healed")
    return o


def chroma_restart(s: System, plan: Plan) -> Outcome:
    """Kill the Chroma server (SIGKILL) with tasks flowing: they degrade to database retrieval
    within about 2 s; start it again: retrieval recovers by itself."""
    assert s.chroma is not None, "needs a Chroma server (CHROMA_URL)"
    s.llm(mode="ok", chunk_delay=0)
    d = Drill(s, "Chroma server killed and restarted", 300)
    d.stream(2, rate=2)  # healthy before
    s.chroma.kill()
    killed_at = time.time()
    d.stream(plan.stream_seconds, rate=2)
    s.chroma.start()
    restarted_at = time.time()
    d.stream(12, rate=1)
    o = d.finish()
    tasks = [s.task(t, tok) for t, tok in d.accepted]
    during = [t for t in tasks if killed_at + 2 <= (parse_time(t.get("submitted_at")) or 0) < restarted_at]
    late_after = [t for t in tasks if (parse_time(t.get("submitted_at")) or 0) >= restarted_at + 8]
    degraded = [t for t in during if reasons(t) & RAG_REASONS]
    recovered = [t for t in late_after if not reasons(t) & RAG_REASONS]
    o.notes.append(
        f"degraded while down: {len(degraded)}/{len(during)}; recovered after: {len(recovered)}/{len(late_after)}"
    )
    if not during or len(degraded) != len(during):
        o.fail("tasks submitted 2 s after the kill were not all degraded to database retrieval")
    if not late_after or not recovered:
        o.fail("retrieval did not recover within 8 s of the restart")
    return o


def cluster_kill(s: System, plan: Plan) -> Outcome:
    """SIGKILL the whole cluster (its main process and every child) with tasks running and queued,
    then start a new one: every task still ends, the API keeps answering."""
    llm_seconds(s, 2)
    d = Drill(s, "whole cluster SIGKILLed and restarted", 300)
    d.submit(9, clients=9)
    wait_until(lambda: busy_worker(s), 20, interval=0.1, what="a busy worker")
    s.procs["cluster"].kill()
    time.sleep(1)
    s.start_cluster()
    o = d.finish()
    s.llm(mode="ok", chunk_delay=0)
    return o


def write_storm(s: System, plan: Plan) -> Outcome:
    """32 clients submitting and reading as fast as they can with 3 workers writing results (an
    instant LLM): no "database is locked", no failed task, no 5xx."""
    s.llm(mode="ok", chunk_delay=0)
    name = "SQLite write storm" if s.profile == "embedded" else "PostgreSQL write storm"
    d = Drill(s, name, 300)
    records = run_load(
        s.web_port,
        s.tokens,
        mix=["submit", "get", "health"],
        processes=4,
        clients=plan.storm_clients,
        duration=plan.storm_seconds,
        timeout=10,
    )
    for r in records:
        if r.action == "submit" and r.status == 202 and r.task:
            d.accepted.append((r.task, s.tokens[r.user % len(s.tokens)]))
    o = d.finish()
    server_errors = [r for r in records if r.status >= 500 and not (r.status == 503 and r.code == "overloaded")]
    failed = [t for t, tok in d.accepted if s.task(t, tok).get("status") == "failed"]
    o.details["requests"] = len(records)
    o.details["responses"] = _statuses_of(records)
    o.notes.append(f"{len(records)} requests, {len(d.accepted)} tasks accepted")
    if server_errors:
        o.fail(f"{len(server_errors)} 5xx answers during the storm: {_statuses_of(server_errors)}")
    if failed:
        o.fail(f"{len(failed)} task(s) failed")
    return o


def flood(s: System, plan: Plan) -> Outcome:
    """`plan.flood` submits as fast as 32 clients can send them, past MAX_QUEUED_TASKS: every answer
    is 202 or a clean refusal (503 overloaded / 429, JSON, Retry-After), and accepted tasks end."""
    s.llm(mode="ok", chunk_delay=0)
    d = Drill(s, f"{plan.flood}-submit flood", 300)
    started = time.monotonic()
    records = d.submit(plan.flood, clients=32, processes=4, seconds=120)  # bounded: 2,000 take ~20-60 s here
    took = time.monotonic() - started
    unclean = [
        r
        for r in records
        if not (r.status == 202 or (r.status in (429, 503) and r.retry_after and r.json_body and r.code))
    ]
    o = d.finish()
    o.details["responses"] = _statuses_of(records)
    o.notes.append(f"{len(records)} submits in {took:.1f} s: {_statuses_of(records)}")
    if len(records) != plan.flood:
        o.fail(f"{plan.flood - len(records)} submits got no record")
    if unclean:
        o.fail(f"{len(unclean)} answers neither 202 nor a clean refusal: {_statuses_of(unclean)}")
    return o


def redis_restart(s: System, plan: Plan) -> Outcome:
    """Restart the (private) Redis: broker, cache and channel layer go away for a moment. Tasks
    it held are lost from the broker, so the sweeper ends them by deadline + grace; new tasks
    succeed once it is back."""
    assert s.redis is not None, "needs a private redis-server"
    s.llm(mode="ok", chunk_delay=0)
    d = Drill(s, "Redis restarted", 300)
    feeder = threading.Thread(target=d.stream, args=(plan.stream_seconds + 4, 2.0), daemon=True)
    feeder.start()
    time.sleep(2)
    s.redis.stop()
    time.sleep(1)
    s.redis.start()
    restarted_at = time.time()
    feeder.join()
    time.sleep(3)
    d.stream(6, rate=1)
    o = d.finish()
    tasks = [s.task(t, tok) for t, tok in d.accepted]
    after = [t for t in tasks if (parse_time(t.get("submitted_at")) or 0) >= restarted_at + 5]
    ok_after = [t for t in after if t.get("status") == "succeeded"]
    refused = _statuses_of(d.refusals)
    o.notes.append(f"after the restart {len(ok_after)}/{len(after)} succeeded; refused while down: {refused}")
    if not after or len(ok_after) != len(after):
        o.fail("tasks submitted 5 s after the restart did not all succeed")
    return o


DRILLS: dict[str, Callable[[System, Plan], Outcome]] = {
    "worker_kill": worker_kill,
    "llm_hang": llm_hang,
    "llm_error_storm": llm_error_storm,
    "chroma_restart": chroma_restart,
    "cluster_kill": cluster_kill,
    "write_storm": write_storm,
    "flood": flood,
    "redis_restart": redis_restart,
}
