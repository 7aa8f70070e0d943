"""`bench/run`: every benchmark, on the embedded profile and (when PostgreSQL and Redis are
reachable) the scale-out one; writes bench/results/<date>-<profile>.json and .md, and charts.

    bench/run                      # the full run (about 10 minutes per profile on 2 cores)
    bench/run --short              # the CI version (bin/test runs it through tests/test_bench_short.py)
    bench/run --profile embedded   # one profile only
    bench/run --publish            # also copy the charts to docs/benchmarks/ for docs/benchmarks.md
    bench/run --only fail_fast     # some benchmarks only (names: see BENCHMARKS)

Exits 1 when a check misses its target (the table says which).
"""

import argparse
import dataclasses
import datetime
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import benchmarks as b
from bench.harness import ROOT, System, load_average, machine, scaleout_unavailable
from bench.report import charts, markdown

BENCHMARKS = ("cold_start", "throughput", "overhead", "fail_fast", "memory", "retrieval", "abuse", "responsiveness")


def run_profile(profile: str, plan: b.Plan, only: set[str], workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    run: dict[str, Any] = {
        "profile": profile,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "short": plan.short,
        "machine": machine(),
        "plan": dataclasses.asdict(plan),
        "results": {},
    }
    system = System(profile, workdir / profile, poems_per_temple=5 if plan.short else None)
    try:
        system.setup()
        system.start()
        broker = "redis" if profile == "scaleout" else "orm"
        steps = {
            "cold_start": lambda: b.cold_start(system, plan),
            "throughput": lambda: b.throughput(system, plan),
            "overhead": lambda: b.overhead(system, plan),
            "fail_fast": lambda: b.fail_fast(system, plan, broker),
            "memory": lambda: b.memory(system, plan),
            "retrieval": lambda: b.retrieval(
                plan, workdir, system.env(DJANGO_SETTINGS_MODULE="fortune_project.settings")
            ),
            "abuse": lambda: b.abuse(plan, system, system.env(DJANGO_SETTINGS_MODULE="fortune_project.settings")),
            "responsiveness": lambda: b.responsiveness(system, plan),  # last: leaves hung tasks behind
        }
        for name in BENCHMARKS:
            if only and name not in only:
                continue
            if name in ("retrieval", "abuse") and profile != "embedded":
                continue  # they start their own stores; once per run is enough
            print(f"[{profile}] {name}…", flush=True)
            try:
                if name not in ("retrieval", "abuse"):
                    # A breaker that opened by accident (an overloaded machine timing out LLM
                    # calls) would stay open for BREAKER_LLM_RECOVERY and skew what follows.
                    for breaker in ("llm", "rag", "chromadb"):
                        system.breaker(breaker, "reset")
                result = steps[name]()
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                traceback.print_exc()
                result = b.Result(name, {"error": f"{type(exc).__name__}: {exc}"})
                result.checks.append(b.Check(f"{name} ran", None, "ran", False, str(exc)))
            run["results"][result.name] = dataclasses.asdict(result)
            for c in result.checks:
                note = f" — {c.note}" if c.note and not c.ok else ""
                print(f"  {c.name}: {c.value} (target {c.target}) {'ok' if c.ok else 'FAIL'}{note}", flush=True)
    finally:
        system.teardown()
    run["load_average_at_end"] = round(load_average(), 2)
    run["seconds"] = round(time.monotonic() - started, 1)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the short CI version")
    parser.add_argument("--profile", choices=("embedded", "scaleout", "all"), default="all")
    parser.add_argument("--only", nargs="*", default=[], choices=BENCHMARKS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where results go")
    parser.add_argument("--publish", action="store_true", help="copy the charts to docs/benchmarks/")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args(argv)

    profiles = ["embedded", "scaleout"] if args.profile == "all" else [args.profile]
    plan = b.Plan.make(args.short)
    workdir = Path(tempfile.mkdtemp(prefix="fortune-bench-"))
    failed = False
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for profile in profiles:
            if profile == "scaleout" and (reason := scaleout_unavailable()):
                print(f"[scaleout] skipped: {reason}")
                continue
            run = run_profile(profile, plan, set(args.only), workdir)
            stem = f"{datetime.date.today().isoformat()}-{profile}{'-short' if args.short else ''}"
            (args.out / f"{stem}.json").write_text(json.dumps(run, indent=1, default=str))
            try:
                made = charts(run, args.out / "charts", f"{stem}-")
            except Exception as exc:  # the figures are saved; a chart that cannot be drawn says why
                print(f"charts failed: {type(exc).__name__}: {exc}")
                made = []
            run["charts"] = [str(p.relative_to(args.out)) for p in made]
            (args.out / f"{stem}.json").write_text(json.dumps(run, indent=1, default=str))
            table = markdown(run)
            (args.out / f"{stem}.md").write_text(table)
            print(table)
            if args.publish:
                docs = ROOT / "docs" / "benchmarks"
                docs.mkdir(parents=True, exist_ok=True)
                for path in made:
                    shutil.copy(path, docs / f"{profile}-{path.name[len(stem) + 1 :]}")
            failed |= any(not c["ok"] for r in run["results"].values() for c in r["checks"])
    finally:
        if args.keep:
            print(f"scratch directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
