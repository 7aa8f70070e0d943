"""The report of a bench run: one Markdown table of the checks and figures, and PNG charts."""

from pathlib import Path
from typing import Any


def markdown(run: dict[str, Any]) -> str:
    """The results of one profile as Markdown: the checks, then the key figures."""
    lines = [
        f"### Profile `{run['profile']}` — {run['date']}{' (short)' if run['short'] else ''}",
        "",
        f"Machine: {run['machine']['cpus']} CPUs ({run['machine']['cpu_model']}), "
        f"{run['machine']['memory_gib']} GiB; load average {run['machine']['load_average_at_start']} at start, "
        f"{run.get('load_average_at_end', '?')} at end.",
        "",
        "| check | value | target | verdict |",
        "|---|---|---|---|",
    ]
    for result in run["results"].values():
        for c in result.get("checks", []):
            lines.append(f"| {c['name']} | {c['value']} | {c['target']} | {'pass' if c['ok'] else '**FAIL**'} |")
    lines += ["", "| figure | value |", "|---|---|"]
    for row in key_figures(run["results"]):
        lines.append(f"| {row[0]} | {row[1]} |")
    return "\n".join(lines) + "\n"


def key_figures(results: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [
        (f"{name} did not run to the end", r["figures"]["error"])
        for name, r in results.items()
        if "error" in r.get("figures", {})
    ]

    def get(name: str, *path: str) -> Any:
        value: Any = results.get(name, {}).get("figures", {})
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    for scenario in ("trivial", "healthy", "hung_llm", "blocking"):
        fig = get("responsiveness", scenario)
        if fig:
            rows.append(
                (
                    f"responsiveness, {scenario.replace('_', ' ')}: p50 / p99 / max ms, error rate",
                    f"{fig['p50']} / {fig['p99']} / {fig['max']}, {fig['error_rate'] or 0:.1%} of {fig['count']}",
                )
            )
    if get("throughput", "tasks_per_s") is not None:
        rows.append(
            (
                "throughput at L = 1 s (tasks/s; limit workers / L)",
                f"{get('throughput', 'tasks_per_s')} ({get('throughput', 'limit_tasks_per_s')})",
            )
        )
    for part in ("queue_ms", "rag_ms", "other_ms", "overhead_ms"):
        fig = get("overhead", part)
        if fig:
            rows.append((f"per-task {part[:-3]} at L ~ 0: p50 / p95 ms", f"{fig['p50']} / {fig['p95']}"))
    if get("cold_start", "cold_run_ms"):
        rows.append(
            (
                "first task of a fresh worker / warm: median run ms",
                f"{get('cold_start', 'cold_run_ms', 'p50')} / {get('cold_start', 'warm_run_ms', 'p50')}",
            )
        )
        rows.append(("cluster start to workers ready (s)", str(get("cold_start", "cluster_ready_s"))))
    for broker in ("orm", "redis"):
        for label, fig in (results.get(f"fail_fast_{broker}", {}).get("figures") or {}).items():
            if isinstance(fig, dict) and "submit_to_terminal_ms" in fig:
                ms = fig["submit_to_terminal_ms"]
                rows.append(
                    (
                        f"fail-fast, {broker} broker, {label}: submit -> terminal p50 / p95 ms; idle queries/s",
                        f"{ms['p50']} / {ms['p95']}; {fig['idle_queries_per_s']}",
                    )
                )
    if get("memory", "tasks"):
        rows.append(
            (
                f"RSS after {get('memory', 'tasks')} tasks: worker / web MB",
                f"{get('memory', 'worker_rss_mb_end')} / {get('memory', 'web_rss_mb_end')}",
            )
        )
        rows.append(
            (
                "RSS slope, MB per 100 tasks: workers; web",
                f"{get('memory', 'worker_slope_mb_per_100_tasks')}; {get('memory', 'web_slope_mb_per_100_tasks')}",
            )
        )
    table = get("retrieval", "table") or []
    if table:  # bench/rag.py's own table, as it prints it (its columns are its author's to change)
        rows.append((f"retrieval (`{get('retrieval', 'command')}`)", "<br>".join(f"`{x}`" for x in table)))
    if get("retrieval", "returncode"):
        rows.append(("retrieval (bench/rag.py)", f"failed: {' / '.join(get('retrieval', 'output')[-3:])}"))
    if get("abuse", "skipped"):
        rows.append(("abuse (bench/abuse.py)", get("abuse", "skipped")))
    return rows


# --- Charts -----------------------------------------------------------------------------------


def charts(run: dict[str, Any], directory: Path, prefix: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for name, draw in (
        ("responsiveness", _responsiveness),
        ("throughput", _throughput),
        ("fail-fast", _fail_fast),
        ("cold-start", _cold_start),
        ("memory", _memory),
    ):
        path = directory / f"{prefix}{name}.png"
        if draw(run, path):
            made.append(path)
    return made


def _figure(title: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Any, path: Path) -> bool:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _responsiveness(run: dict[str, Any], path: Path) -> bool:
    result = run["results"].get("responsiveness")
    if not result or "error" in result["figures"]:
        return False
    fig, ax = _figure(f"Responsiveness, 32 clients ({run['profile']}): latency percentiles")
    labels = {
        "trivial": "trivial view",
        "healthy": "API, healthy\n(LLM 1 s)",
        "hung_llm": "API, LLM hung,\nworkers stuck",
        "blocking": "LLM inline\n(blocking)",
    }
    width, x = 0.25, range(len(labels))
    for i, pct in enumerate(("p50", "p99", "max")):
        values = [result["figures"][k][pct] or 0 for k in labels]
        ax.bar([p + (i - 1) * width for p in x], values, width, label=pct)
    ax.set_xticks(list(x), list(labels.values()))
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.legend()
    return _save(fig, path)


def _throughput(run: dict[str, Any], path: Path) -> bool:
    result = run["results"].get("throughput")
    if not result or not result["series"].get("finished") or "error" in result["figures"]:
        return False
    finished, limit = result["series"]["finished"], result["series"]["limit"]
    fig, ax = _figure(f"Throughput at LLM latency 1 s ({run['profile']}): {result['figures']['ratio']} of the limit")
    ax.step(finished, range(1, len(finished) + 1), where="post", label="tasks finished")
    ax.plot([0, finished[-1]], [len(finished) - limit * finished[-1], len(finished)], "--", label="workers / L")
    ax.set_xlabel("seconds since the first task finished")
    ax.set_ylabel("tasks")
    ax.legend()
    return _save(fig, path)


def _cdf(ax: Any, values: list[float], label: str) -> None:
    ordered = sorted(values)
    ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)


def _fail_fast(run: dict[str, Any], path: Path) -> bool:
    series = {}
    for broker in ("orm", "redis"):
        result = run["results"].get(f"fail_fast_{broker}")
        if result:
            series.update(result["series"])
    if not series:
        return False
    fig, ax = _figure(f"Fail-fast ({run['profile']}): submit -> terminal with the llm breaker open")
    for label, values in series.items():
        if values:
            _cdf(ax, values, label)
    ax.axvline(100, color="red", linestyle=":", label="100 ms target (p95)")
    ax.axhline(0.95, color="grey", linestyle=":")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of tasks")
    ax.legend()
    return _save(fig, path)


def _cold_start(run: dict[str, Any], path: Path) -> bool:
    result = run["results"].get("cold_start")
    if not result or "error" in result["figures"]:
        return False
    fig, ax = _figure(f"Cold start ({run['profile']}): time in the worker, ms")
    cold, warm = result["series"]["cold"], result["series"]["warm"]
    ax.boxplot([cold, warm], showfliers=True)
    ax.set_xticks([1, 2], [f"first task of a fresh worker (n={len(cold)})", f"warm (n={len(warm)})"])
    ax.set_ylim(bottom=0)
    return _save(fig, path)


def _memory(run: dict[str, Any], path: Path) -> bool:
    result = run["results"].get("memory")
    if not result or "error" in result["figures"]:
        return False
    samples = result["series"]["samples"]
    fig, ax = _figure(f"RSS while {result['figures']['tasks']} tasks run ({run['profile']})")
    xs = [x["tasks"] for x in samples]
    for n, pid in enumerate(samples[0]["workers"]):
        ax.plot(xs, [x["workers"].get(pid) for x in samples], marker=".", label=f"worker {n + 1}")
    ax.plot(xs, [x["web"] for x in samples], marker=".", label="web (uvicorn)")
    ax.set_xlabel("tasks finished")
    ax.set_ylabel("RSS, MB")
    ax.set_ylim(bottom=0)
    ax.legend()
    return _save(fig, path)
