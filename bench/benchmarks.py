"""The benchmarks of `bench/run`, each against a running System, each reporting ratios against a
baseline measured in the same run (absolute times vary too much on shared machines).

Each returns a Result: figures (for the JSON), checks (the issue's acceptance targets, each a
value against its target) and series (for the charts).
"""

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import stats
from bench.harness import PYTHON, ROOT, TERMINAL, System, http, llm_pieces, rss_mb, wait_until
from bench.load import Record, run_load


@dataclass
class Check:
    name: str
    value: float | None
    target: str  # human text, e.g. "<= 1.5"
    ok: bool
    note: str = ""


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Plan:
    """How much of each benchmark to run: the full manual run, or the short CI one."""

    short: bool
    clients: int = 32
    load_processes: int = 4
    responsiveness_seconds: float = 30
    responsiveness_rate: float = 1.0  # requests/s per client: paced like people, below saturation
    throughput_tasks: int = 60
    overhead_tasks: int = 40
    cold_rounds: int = 3
    failfast_tasks: int = 60
    idle_seconds: float = 20
    memory_tasks: int = 500
    memory_wave: int = 25
    rag_args: tuple[str, ...] = ()

    @classmethod
    def make(cls, short: bool) -> "Plan":
        if not short:
            return cls(short=False, rag_args=("--sizes", "1000", "5000", "--queries", "200"))
        return cls(
            short=True,
            responsiveness_seconds=8,
            throughput_tasks=21,
            overhead_tasks=15,
            cold_rounds=1,
            failfast_tasks=30,
            idle_seconds=6,
            memory_tasks=90,
            memory_wave=15,
            rag_args=("--sizes", "300", "--queries", "30"),
        )


def timed(fn: Callable[..., Result]) -> Callable[..., Result]:
    def run(*args: Any, **kwargs: Any) -> Result:
        started = time.monotonic()
        result = fn(*args, **kwargs)
        result.seconds = round(time.monotonic() - started, 1)
        return result

    return run


# --- helpers ----------------------------------------------------------------------------------


def parse_time(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def submit_many(s: System, count: int, clients: int = 4, processes: int = 1, rate: float = 0) -> list[Record]:
    """`count` submits from a load process; the accepted ones (202)."""
    records = run_load(
        s.web_port,
        s.tokens,
        mix=["submit"],
        processes=processes,
        clients=min(clients, count),
        duration=max(30.0, count / rate * 2 if rate else 30.0),
        max_requests=count,
        rate=rate,
    )
    return [r for r in records if r.status == 202 and r.task]


def owners(s: System, records: list[Record]) -> list[tuple[str, str]]:
    """(task id, its owner's token) for accepted submits."""
    return [(r.task, s.tokens[r.user % len(s.tokens)]) for r in records if r.task]


def drain(s: System, timeout: float) -> None:
    """Until nothing is queued or running (the pool's counts, one cheap call a second)."""

    def idle() -> bool:
        try:
            status, body, _ = s.api("GET", "/monitoring/worker-pool", token=s.staff_token)
        except OSError:
            return False
        return status == 200 and body["queued"] == 0 and body["running"] == 0

    wait_until(idle, timeout, interval=0.5, what="the queue to drain")


def finished_tasks(s: System, records: list[Record], timeout: float) -> list[dict]:
    drain(s, timeout)
    found = s.wait_terminal(owners(s, records), timeout=30)
    return list(found.values())


def check(name: str, value: float | None, op: str, target: float, note: str = "") -> Check:
    ok = value is not None and (value <= target if op == "<=" else value >= target if op == ">=" else value < target)
    return Check(name, None if value is None else round(value, 3), f"{op} {target}", bool(ok), note)


# --- 1. Responsiveness ------------------------------------------------------------------------


def latency_summary(records: list[Record], allowed: tuple[int, ...]) -> dict[str, Any]:
    ms = [r.ms for r in records]
    errors = [r for r in records if r.status not in allowed]
    return {
        **stats.summary(ms),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(records), 4) if records else None,
        "statuses": {str(k): v for k, v in sorted(_count(r.status for r in records).items())},
        "by_action": {a: stats.summary([r.ms for r in records if r.action == a]) for a in {r.action for r in records}},
    }


def _count(values: Any) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


WARMUP = 1.0  # seconds of each load run left out of the figures


@timed
def responsiveness(s: System, plan: Plan) -> Result:
    """The API (submit, get, health) under 32 paced clients while the LLM hangs and every worker
    is stuck, beside the same load on a trivial Django view, on the same API with a healthy
    system (LLM answering in 1 s), and on the blocking endpoint (the LLM called inline). The
    trivial and hung scenarios alternate in halves, so a burst of outside load on the machine
    hits both alike. Runs last: it leaves a queue of hung tasks behind."""
    workers = int(s.env().get("FORTUNE_WORKERS", "3"))

    def load(mix: list[str], seconds: float) -> list[Record]:
        """The run's requests after its first WARMUP seconds (load processes starting, first
        connections), which would otherwise set the tail of whichever scenario ran them."""
        records = run_load(
            s.web_port,
            s.tokens,
            mix=mix,
            processes=plan.load_processes,
            clients=plan.clients,
            duration=seconds + WARMUP,
            rate=plan.responsiveness_rate,
            timeout=10,
        )
        start = min((r.at for r in records), default=0)
        return [r for r in records if r.at >= start + WARMUP]

    half = plan.responsiveness_seconds / 2
    api_mix = ["submit", "get", "health", "get", "health"]
    # Hung calls must outlast the scenario: with the usual LLM timeouts a worker would give up
    # after LLM_CHUNK_TIMEOUT, and after a few such failures the llm breaker would open and no
    # worker would wait on the LLM at all. Deadlines (TASK_TIMEOUT) still bound every task.
    s.restart_cluster(LLM_TIMEOUT="600", LLM_CHUNK_TIMEOUT="600")
    runs: dict[str, list[Record]] = {"trivial": [], "healthy": [], "hung_llm": []}
    runs["trivial"] += load(["trivial"], half)
    s.llm(mode="ok", chunk_delay=1.0 / llm_pieces())
    runs["healthy"] += load(api_mix, 2 * half)
    # The healthy load outruns the workers and leaves a backlog. Drained first, so that the tasks
    # that hang are fresh: left queued, the oldest reached their deadline (TASK_TIMEOUT) inside
    # the hung window, their LLM calls failed, the llm breaker opened, and the whole backlog went
    # through degraded readings at once while this scenario still counted every worker stuck
    # (measured: submits of 150-540 ms, 42-46 s into the hang).
    drain(s, 180)
    before = s.llm_calls()
    s.llm(mode="hang")
    for n in range(workers):  # a task per worker, so that every worker is stuck
        s.api("POST", "/async-chat/tasks", {"question": f"Stuck {n}?"}, token=s.tokens[n % len(s.tokens)])
    # Calls made in hang mode never return: one per worker means all of them are stuck.
    wait_until(lambda: s.llm_calls() - before >= workers, 120, what="every worker on the hung LLM")
    runs["hung_llm"] += load(api_mix, half)
    runs["trivial"] += load(["trivial"], half)  # alternating: outside load hits both alike
    runs["hung_llm"] += load(api_mix, half)
    stuck = s.llm_calls() - before >= workers
    llm_breaker = s.breakers().get("llm")  # "closed": no worker gave up on the LLM during the hang
    blocking = load(["blocking", "get", "health", "get", "health"], half)
    figures: dict[str, Any] = {
        "clients": plan.clients,
        "seconds_per_scenario": plan.responsiveness_seconds,
        "rate_per_client": plan.responsiveness_rate,
        "trivial": latency_summary(runs["trivial"], (200,)),
        "healthy": latency_summary(runs["healthy"], (200, 202)),
        "hung_llm": latency_summary(runs["hung_llm"], (200, 202)),
        "blocking": latency_summary(blocking, (200,)),
        "every_worker_stuck_at_end": stuck,
        "llm_breaker_at_end_of_hang": llm_breaker,
    }
    p99_ratio = stats.ratio(figures["hung_llm"]["p99"], figures["trivial"]["p99"])
    figures["hung_llm_p99_over_trivial_p99"] = p99_ratio
    figures["hung_llm_p99_over_healthy_p99"] = stats.ratio(figures["hung_llm"]["p99"], figures["healthy"]["p99"])
    figures["healthy_p99_over_trivial_p99"] = stats.ratio(figures["healthy"]["p99"], figures["trivial"]["p99"])
    figures["blocking_p99_over_trivial_p99"] = stats.ratio(figures["blocking"]["p99"], figures["trivial"]["p99"])
    return Result(
        "responsiveness",
        figures,
        [
            check("responsiveness: hung-LLM p99 / trivial p99", p99_ratio, "<=", 1.5),
            check("responsiveness: hung-LLM errors", figures["hung_llm"]["errors"], "<=", 0),
            check(
                "responsiveness: hung-LLM p99 / healthy p99",
                figures["hung_llm_p99_over_healthy_p99"],
                "<=",
                1.5,
                note="ours, beside the issue's: what the hang itself costs the API",
            ),
        ],
        {name: [(r.at, r.ms) for r in records] for name, records in {**runs, "blocking": blocking}.items()},
    )


# --- 2. Throughput and per-task overhead ------------------------------------------------------


@timed
def throughput(s: System, plan: Plan, latency: float = 1.0) -> Result:
    """Tasks per second at LLM latency L against the limit workers / L, in steady state: the
    rate at which tasks finish after the first `workers` of them."""
    workers = int(s.env().get("FORTUNE_WORKERS", "3"))
    s.llm(mode="ok", chunk_delay=latency / llm_pieces(), reset=True)
    accepted = submit_many(s, plan.throughput_tasks, clients=8)
    tasks = finished_tasks(s, accepted, timeout=plan.throughput_tasks * latency + 120)
    ends = sorted(t for t in (parse_time(x.get("finished_at")) for x in tasks) if t)
    succeeded = [t for t in tasks if t.get("status") == "succeeded"]
    steady = (len(ends) - workers) / (ends[-1] - ends[workers - 1]) if len(ends) > workers else None
    limit = workers / latency
    llm_ms = [t["timings"]["llm_ms"] for t in succeeded if t["timings"].get("llm_ms")]
    llm_p50 = stats.median(llm_ms)
    figures: dict[str, Any] = {
        "llm_latency_s": latency,
        "workers": workers,
        "tasks": len(tasks),
        "succeeded": len(succeeded),
        "tasks_per_s": stats.rounded(steady, 3),
        "limit_tasks_per_s": limit,
        "ratio": stats.ratio(steady, limit),
        "llm_ms_p50": stats.rounded(stats.median(llm_ms)),
        "ratio_to_measured_llm": stats.ratio(steady, workers / (llm_p50 / 1000)) if llm_p50 else None,
    }
    first = ends[0] if ends else 0
    return Result(
        "throughput",
        figures,
        [check("throughput / (workers / L) at L = 1 s", figures["ratio"], ">=", 0.95)],
        {"finished": [e - first for e in ends], "limit": limit},
    )


@timed
def overhead(s: System, plan: Plan) -> Result:
    """At L ~ 0 (the fake answers at once), what a task costs besides the LLM: queue wait,
    retrieval, and the rest (claim, stage changes, saving). Submitted at 4/s, below capacity."""
    s.llm(mode="ok", chunk_delay=0, reset=True)
    accepted = submit_many(s, plan.overhead_tasks, clients=1, rate=4)
    tasks = [t for t in finished_tasks(s, accepted, timeout=120) if t.get("status") == "succeeded"]
    timings = [t["timings"] for t in tasks]
    queue = [x["queue_ms"] for x in timings if x.get("queue_ms") is not None]
    rag = [x["rag_ms"] for x in timings if x.get("rag_ms") is not None]
    llm = [x["llm_ms"] or 0 for x in timings]
    total = [x["total_ms"] for x in timings]
    rest = [x["total_ms"] - (x["queue_ms"] or 0) - (x["rag_ms"] or 0) - (x["llm_ms"] or 0) for x in timings]
    figures: dict[str, Any] = {
        "tasks": len(tasks),
        "queue_ms": stats.summary(queue),
        "rag_ms": stats.summary(rag),
        "llm_ms": stats.summary(llm),
        "other_ms": stats.summary(rest),
        "total_ms": stats.summary(total),
        "overhead_ms": stats.summary([t - m for t, m in zip(total, llm, strict=True)]),
    }
    return Result("overhead", figures, [], {"total": total, "queue": queue, "rag": rag})


# --- Cold start -------------------------------------------------------------------------------


def _batch_run_ms(s: System, workers: int) -> list[dict]:
    """One task per worker at once; the finished tasks."""
    accepted = submit_many(s, workers, clients=workers)
    return [t for t in finished_tasks(s, accepted, timeout=120) if t.get("status") == "succeeded"]


def _run_ms(task: dict) -> float:
    timings = task["timings"]
    return float(timings["total_ms"] - (timings["queue_ms"] or 0))


@timed
def cold_start(s: System, plan: Plan) -> Result:
    """The first task of each worker of a fresh cluster (started, its workers ready) against the
    same batch once warm. Time in the worker (claim to end), so the broker's poll phase does not
    blur a one-sample comparison; submit -> terminal is reported beside it."""
    workers = int(s.env().get("FORTUNE_WORKERS", "3"))
    s.llm(mode="ok", chunk_delay=0, reset=True)
    cold, warm, ready = [], [], []
    for _ in range(plan.cold_rounds):
        ready.append(s.restart_cluster())
        cold += _batch_run_ms(s, workers)
        for _ in range(3):
            warm += _batch_run_ms(s, workers)
    cold_ms, warm_ms = [_run_ms(t) for t in cold], [_run_ms(t) for t in warm]
    figures: dict[str, Any] = {
        "rounds": plan.cold_rounds,
        "cluster_ready_s": [round(x, 1) for x in ready],
        "cold_run_ms": stats.summary(cold_ms),
        "warm_run_ms": stats.summary(warm_ms),
        "cold_rag_ms_p50": stats.median([t["timings"]["rag_ms"] for t in cold if t["timings"].get("rag_ms")]),
        "warm_rag_ms_p50": stats.median([t["timings"]["rag_ms"] for t in warm if t["timings"].get("rag_ms")]),
        "cold_llm_ms_p50": stats.median([t["timings"]["llm_ms"] or 0 for t in cold]),
        "warm_llm_ms_p50": stats.median([t["timings"]["llm_ms"] or 0 for t in warm]),
        "cold_total_ms": stats.summary([t["timings"]["total_ms"] for t in cold]),
        "warm_total_ms": stats.summary([t["timings"]["total_ms"] for t in warm]),
        "ratio": stats.ratio(stats.median(cold_ms), stats.median(warm_ms)),
    }
    return Result(
        "cold_start",
        figures,
        [check("first task on a fresh cluster / warm (median run time)", figures["ratio"], "<=", 1.5)],
        {"cold": cold_ms, "warm": warm_ms},
    )


# --- 3. Fail-fast -----------------------------------------------------------------------------


def idle_queries_per_s(s: System, seconds: float) -> float:
    time.sleep(2)  # let the last task's bookkeeping settle
    before, started = s.queries(), time.monotonic()
    time.sleep(seconds)
    return (s.queries() - before) / (time.monotonic() - started)


def submit_to_terminal(s: System, count: int) -> list[dict]:
    """Submits spaced at about 5/s (so each meets an idle cluster at a random poll phase); the
    ended tasks, whose timings hold submit -> terminal as the row records it (total_ms)."""
    accepted = submit_many(s, count, clients=1, rate=5)
    return [t for t in finished_tasks(s, accepted, timeout=120) if t.get("status") in TERMINAL]


@timed
def fail_fast(s: System, plan: Plan, broker: str) -> Result:
    """Submit -> terminal with the llm breaker forced open (the offline reading at once). On the
    ORM broker also the idle database load (queries/s of every process), as configured (wake-up
    on, poll QUEUE_POLL) against the old setting (poll 0.2 s, no wake-up), and in the full run
    what shorter polls alone would give."""
    s.llm(mode="ok", chunk_delay=0, reset=True)
    figures: dict[str, Any] = {"broker": broker}
    series: dict[str, Any] = {}
    checks: list[Check] = []

    def measure(label: str) -> dict[str, Any]:
        idle = idle_queries_per_s(s, plan.idle_seconds)
        s.breaker("llm", "force-open")
        try:
            tasks = submit_to_terminal(s, plan.failfast_tasks)
        finally:
            s.breaker("llm", "reset")
        latencies = [float(t["timings"]["total_ms"]) for t in tasks]
        series[label] = latencies
        return {
            "idle_queries_per_s": round(idle, 2),
            "submit_to_terminal_ms": stats.summary(latencies),
            "queue_ms": stats.summary([t["timings"]["queue_ms"] or 0 for t in tasks]),
            "rag_ms": stats.summary([t["timings"]["rag_ms"] or 0 for t in tasks]),
        }

    figures["configured"] = measure(broker if broker == "redis" else "orm (as configured)")
    p95 = figures["configured"]["submit_to_terminal_ms"]["p95"]
    checks.append(check(f"fail-fast p95 on the {broker} broker (ms)", p95, "<", 100))
    if broker == "orm":
        variants = [("old: poll 0.2 s, no wake-up", "0.2")]
        if not plan.short:
            variants += [(f"poll {p} s, no wake-up", p) for p in ("0.1", "0.05")]
        for label, poll in variants:
            s.restart_cluster(QUEUE_POLL=poll, QUEUE_WAKEUP="false")
            figures[label] = measure(label)
        s.restart_cluster()
        old = figures["old: poll 0.2 s, no wake-up"]
        figures["idle_load_ratio"] = stats.ratio(figures["configured"]["idle_queries_per_s"], old["idle_queries_per_s"])
        checks.append(check("idle DB queries/s, as configured / old", figures["idle_load_ratio"], "<=", 2))
    return Result(f"fail_fast_{broker}", figures, checks, series)


# --- 5. Memory --------------------------------------------------------------------------------


@timed
def memory(s: System, plan: Plan) -> Result:
    """Web and worker RSS while `memory_tasks` tasks run (L ~ 0), in waves, and its slope after
    the first fifth (imports, caches and pools fill up first)."""
    s.llm(mode="ok", chunk_delay=0, reset=True)
    web = s.procs["web"].pid
    pids = s.cluster_worker_pids()
    samples: list[dict[str, Any]] = []
    done = 0

    def sample() -> None:
        samples.append({"tasks": done, "web": rss_mb(web), "workers": {str(p): rss_mb(p) for p in pids}})

    sample()
    while done < plan.memory_tasks:
        wave = min(plan.memory_wave, plan.memory_tasks - done)
        accepted = submit_many(s, wave, clients=5)
        drain(s, 120)
        done += len(accepted)
        sample()
    after = [x for x in samples if x["tasks"] >= plan.memory_tasks / 5]
    xs = [x["tasks"] for x in after]
    slopes = {}
    for pid in map(str, pids):
        ys = [x["workers"][pid] for x in after]
        if None not in ys:
            slopes[pid] = stats.slope(xs, ys)
    web_slope = stats.slope(xs, [x["web"] for x in after])
    worker_rss = statistics.mean(v for v in samples[-1]["workers"].values() if v)
    worst = max((v for v in slopes.values() if v is not None), default=None)
    growth = worst * 500 if worst is not None else None
    figures: dict[str, Any] = {
        "tasks": done,
        "worker_rss_mb_end": round(worker_rss, 1),
        "web_rss_mb_end": stats.rounded(samples[-1]["web"]),
        "worker_slope_mb_per_100_tasks": {
            p: stats.rounded(v * 100 if v is not None else None, 3) for p, v in slopes.items()
        },
        "web_slope_mb_per_100_tasks": stats.rounded(web_slope * 100 if web_slope is not None else None, 3),
        "worst_worker_growth_mb_per_500_tasks": stats.rounded(growth, 2),
        "worst_worker_growth_ratio": stats.ratio(growth, worker_rss),
        "same_workers_throughout": set(pids) == set(s.cluster_worker_pids()),
    }
    return Result(
        "memory",
        figures,
        [
            check(
                "worker RSS growth over 500 tasks / worker RSS (slope ~ 0)",
                figures["worst_worker_growth_ratio"],
                "<=",
                0.05,
                note="worst worker; least-squares slope after the first fifth, times 500",
            )
        ],
        {"samples": samples},
    )


# --- 4. Retrieval and 6. Abuse (their own scripts) ---------------------------------------------


@timed
def retrieval(plan: Plan, workdir: Path, env: dict[str, str]) -> Result:
    """bench/rag.py as it stands (another engineer owns it): its table, and our retrieve's
    ratio to a bare Chroma query where it prints one."""
    done = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "rag.py"), *plan.rag_args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (workdir / "rag.out").write_text(done.stdout + done.stderr)
    lines = done.stdout.strip().splitlines()
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("passages")), None)
    figures = {
        "returncode": done.returncode,
        "command": "bench/rag.py " + " ".join(plan.rag_args),
        "table": lines[header:] if header is not None else [],
        "output": lines[-12:],
    }
    return Result("retrieval", figures, [])


@timed
def abuse(plan: Plan, s: System, env: dict[str, str]) -> Result:
    """bench/abuse.py (issue 11) when it exists, pointed at this system if it takes a URL."""
    script = ROOT / "bench" / "abuse.py"
    if not script.exists():
        return Result("abuse", {"skipped": "bench/abuse.py does not exist yet"})
    help_text = subprocess.run(
        [PYTHON, str(script), "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    ).stdout
    args = [PYTHON, str(script)]
    if plan.short and "--short" in help_text:
        args.append("--short")
    for flag in ("--base-url", "--url"):
        if flag in help_text:
            args += [flag, s.base]
            break
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    return Result("abuse", {"returncode": done.returncode, "output": done.stdout.strip().splitlines()[-40:]})


def health_ok(s: System) -> bool:
    try:
        return http("GET", f"{s.api_base}/async-chat/health", timeout=5)[0] in (200, 503)
    except OSError:
        return False
