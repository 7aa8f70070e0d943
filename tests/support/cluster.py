"""A real Django-Q2 cluster over a file SQLite database, for integration tests."""

import json
import os
import signal
import sqlite3
from pathlib import Path

from tests.support.processes import Process, manage, run_manage, wait_until

POEMS = [
    {
        "temple": "jade-harbor",
        "temple_name": "Jade Harbor Temple",
        "number": n,
        "title": f"Test poem {n}",
        "rank": "blessing",
        "verse": f"Verse of test poem {n}",
        "meaning": f"Meaning of test poem {n}",
        "language": "en",
        "advice": {"career": f"Career advice {n}: your work will prosper.", "love": f"Love advice {n}."},
    }
    for n in range(1, 4)
]

SUBMIT = """
import json, sys
from django.contrib.auth.models import User
from chat.submission import Question, submit_question
user, _ = User.objects.get_or_create(username="alice")
ids = [str(submit_question(user, Question({question!r}))[0].id) for _ in range({count})]
print("IDS=" + json.dumps(ids))
"""


def prepare(env: dict[str, str], tmp_path: Path, poems: list[dict] | None = None) -> None:
    for args in (["migrate", "-v0"], ["createcachetable"]):
        done = run_manage(args, env)
        assert done.returncode == 0, done.stderr
    poem_file = tmp_path / "poems.jsonl"
    poem_file.write_text("\n".join(json.dumps(p) for p in poems or POEMS))
    done = run_manage(["load_poems", str(poem_file)], env)
    assert done.returncode == 0, done.stderr


def submit(env: dict[str, str], count: int, question: str = "Will my new job go well?") -> list[str]:
    done = run_manage(["shell", "-c", SUBMIT.format(question=question, count=count)], env)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("IDS="))
    return json.loads(line[4:])


def tasks(db_path: Path) -> dict[str, dict]:
    """Task rows read straight from the file, independent of the test's own Django database."""
    with sqlite3.connect(db_path, timeout=20) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT id, status, stage, deliveries, worker_pid, error, result FROM chat_fortunetask")
        found = {}
        for row in rows:
            task_id = str(row["id"])
            if len(task_id) == 32:
                task_id = f"{task_id[:8]}-{task_id[8:12]}-{task_id[12:16]}-{task_id[16:20]}-{task_id[20:]}"
            found[task_id] = dict(row) | {"error": json.loads(row["error"] or "null")}
        return found


STAT = """
from django_q.status import Stat
print("PIDS=" + ",".join(str(w) for c in Stat.get_all() for w in c.workers))
"""


def worker_pids(env: dict[str, str]) -> list[int]:
    """Worker pids as the cluster itself reports them (its Stat heartbeat in the shared cache)."""
    done = run_manage(["shell", "-c", STAT], env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PIDS=")), "PIDS=")
    return [int(p) for p in line[5:].split(",") if p]


def start_cluster(env: dict[str, str], tmp_path: Path) -> Process:
    cluster = manage(["qcluster"], env, tmp_path / "qcluster.log")
    workers = int(env.get("FORTUNE_WORKERS", "3"))
    wait_until(lambda: len(worker_pids(env)) >= workers, 60, interval=0.5, what=f"{workers} workers")
    # The heartbeat lists workers before their post_spawn warm-up (the embedding model) ends;
    # a short-deadline task must not expire while they are still loading.
    wait_until(lambda: cluster.log().count("worker warmed up") >= workers, 90, interval=0.5, what="warm-up")
    return cluster


def all_terminal(db_path: Path, ids: list[str]) -> bool:
    rows = tasks(db_path)
    return all(rows[i]["status"] in ("succeeded", "failed", "timed_out", "cancelled") for i in ids)


def stop_pids(pids: list[int], sig: int = signal.SIGSTOP) -> None:
    for pid in pids:
        os.kill(pid, sig)
