"""`chaos/run`: the failure drills on the embedded profile and (when PostgreSQL and Redis are
reachable) the scale-out one; prints one table (drill, profile, tasks, lost, late, API p99,
verdict) and writes bench/results/<date>-chaos[-short].json and .md.

    chaos/run                       # every drill, both profiles
    chaos/run --short               # the CI version (tests/test_bench_short.py)
    chaos/run --profile embedded --only worker_kill flood

Exits 1 when a drill fails.
"""

import argparse
import dataclasses
import datetime
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import ROOT, ChromaServer, System, machine, scaleout_unavailable
from chaos.drills import CHAOS_ENV, DRILLS, Outcome, Plan

ORDER = (
    "llm_hang",
    "llm_error_storm",
    "worker_kill",
    "cluster_kill",
    "chroma_restart",
    "write_storm",
    "flood",
    "redis_restart",
)


def restart_processes(s: System) -> None:
    for name in ("cluster", "sweeper", "web"):
        proc = s.procs.pop(name, None)
        if proc:
            proc.stop()
    s.start()


@contextmanager
def chroma_server(s: System) -> Iterator[None]:
    """The embedded profile has no Chroma server to kill: for that drill, serve a copy of its
    store with `chroma run` and point every process at it (CHROMA_URL), then go back."""
    if s.chroma is not None:
        yield
        return
    for name in ("cluster", "sweeper", "web"):
        proc = s.procs.pop(name, None)
        if proc:
            proc.stop()
    shutil.copytree(s.workdir / "chroma", s.workdir / "chroma-server", dirs_exist_ok=True)
    s.chroma = ChromaServer(s.workdir / "chroma-server", s.logs)
    s.chroma.start()
    s.start()
    try:
        yield
    finally:
        s.chroma.kill()
        s.chroma = None
        restart_processes(s)


def settle(s: System) -> None:
    """Between drills: the LLM healthy, breakers closed, a full cluster."""
    s.llm(mode="ok", chunk_delay=0)
    for name in ("llm", "rag", "chromadb"):
        s.breaker(name, "reset")
    if "cluster" not in s.procs or not s.procs["cluster"].alive():
        s.start_cluster()


def run_profile(profile: str, plan: Plan, only: set[str], workdir: Path) -> list[Outcome]:
    outcomes: list[Outcome] = []
    s = System(profile, workdir / profile, dict(CHAOS_ENV), poems_per_temple=5 if plan.short else None)
    try:
        s.setup()
        s.start()
        for name in ORDER:
            if only and name not in only:
                continue
            if name == "redis_restart" and profile != "scaleout":
                outcomes.append(Outcome("Redis restarted", profile, verdict="n/a", notes=["no Redis in this profile"]))
                continue
            print(f"[{profile}] {name}…", flush=True)
            started = time.monotonic()
            try:
                settle(s)
                if name == "chroma_restart":
                    with chroma_server(s):
                        outcome = DRILLS[name](s, plan)
                else:
                    outcome = DRILLS[name](s, plan)
            except Exception as exc:  # a drill that breaks is a failed drill, and the next still runs
                outcome = Outcome(name, profile, verdict="FAIL", notes=[f"{type(exc).__name__}: {exc}"])
                outcome.seconds = round(time.monotonic() - started, 1)
            print(f"  {outcome.verdict}: {'; '.join(outcome.notes)}", flush=True)
            outcomes.append(outcome)
    finally:
        s.teardown()
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| drill | profile | tasks | lost | late | API p99 ms | verdict | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        notes = "; ".join(o.notes).replace("|", "/")
        lines.append(
            f"| {o.drill} | {o.profile} | {o.tasks} | {o.lost} | {o.late} | {o.api_p99_ms} | {o.verdict} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the short CI version")
    parser.add_argument("--profile", choices=("embedded", "scaleout", "all"), default="all")
    parser.add_argument("--only", nargs="*", default=[], choices=ORDER)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args(argv)
    plan = Plan.make(args.short)
    workdir = Path(tempfile.mkdtemp(prefix="fortune-chaos-"))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for profile in ["embedded", "scaleout"] if args.profile == "all" else [args.profile]:
            if profile == "scaleout" and (reason := scaleout_unavailable()):
                outcomes.append(Outcome("(all drills)", profile, verdict="skipped", notes=[reason]))
                continue
            outcomes += run_profile(profile, plan, set(args.only), workdir)
    finally:
        if args.keep:
            print(f"scratch directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = table(outcomes)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-chaos{'-short' if args.short else ''}"
    report = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "short": args.short,
        "machine": machine(),
        "seconds": round(time.monotonic() - started, 1),
        "settings": CHAOS_ENV,
        "drills": [dataclasses.asdict(o) for o in outcomes],
    }
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / f"{stem}.md").write_text(text)
    return 1 if any(o.verdict == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
