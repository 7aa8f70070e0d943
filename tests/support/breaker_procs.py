"""Real processes sharing circuit breakers, for the cross-process tests.

`python -m tests.support.breaker_procs` is a child that sets Django up from its environment (its
own SQLite file with the database cache, or REDIS_URL) and answers each command line on stdin with
one JSON line on stdout. Every command starts with the BREAKER_KEY_PREFIX to use, so one set of
children serves many tests, each with breakers of its own:

    PREFIX call NAME ok|fail            one call        -> {"outcome": "ran"|"failed"|"rejected", "state"}
    PREFIX state NAME                                   -> {"state"}
    PREFIX storm NAME THREADS AT SLEEP ok|fail LOG
        THREADS threads wait for the wall-clock time AT, then make one call each; the called
        function appends a line to LOG, sleeps SLEEP s and then succeeds or fails
                                                        -> {"ran", "failed", "rejected"}
    PREFIX snapshot NAME                                -> the breaker's snapshot

`Child` drives one from a test; `shared_store` migrates the SQLite file children share.
"""

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.processes import ROOT, base_env, run_manage

# --- The test side ------------------------------------------------------------------------------

_store: list[Path] = []


def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose SQLite file is migrated and has the cache table: one per test session."""
    if not _store:
        directory = tmp_path_factory.mktemp("breaker-store")
        env = base_env(directory)
        for args in (["migrate", "--noinput"], ["createcachetable"]):
            done = run_manage(args, env)
            assert done.returncode == 0, done.stderr
        _store.append(directory)
    return _store[0]


def events_since(store: Path, after_id: int, name: str) -> list[tuple[str, str, str]]:
    """(from, to, who) of the BreakerEvents the children wrote after `after_id`."""
    with sqlite3.connect(store / "fortune.sqlite3") as db:
        rows = db.execute(
            "SELECT from_state, to_state, who FROM monitoring_breakerevent WHERE id > ? AND name = ? ORDER BY id",
            (after_id, name),
        )
        return list(rows)


def last_event_id(store: Path) -> int:
    with sqlite3.connect(store / "fortune.sqlite3") as db:
        return db.execute("SELECT COALESCE(MAX(id), 0) FROM monitoring_breakerevent").fetchone()[0]


class Child:
    def __init__(self, env: dict[str, str], log_path: Path):
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.support.breaker_procs"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.prefix = "breaker"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self._lines.put(line)

    def send(self, *words: object) -> None:
        self.popen.stdin.write(" ".join(map(str, (self.prefix, *words))) + "\n")
        self.popen.stdin.flush()

    def receive(self, timeout: float = 30) -> dict:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"child {self.popen.pid} gave no answer in {timeout} s") from None

    def ask(self, *words: object, timeout: float = 30) -> dict:
        self.send(*words)
        return self.receive(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


def start_children(count: int, env: dict[str, str], log_dir: Path) -> list[Child]:
    """Start `count` children at once and wait until each has set Django up."""
    children = [Child(env, log_dir / f"child-{i}.log") for i in range(count)]
    for child in children:
        assert "ready" in child.receive(timeout=60)
    return children


# --- The child side -----------------------------------------------------------------------------


def _call(name: str, mode: str) -> dict:
    from fortune_project.resilience.breakers import BreakerOpen, get_breaker

    breaker = get_breaker(name)
    try:
        breaker.call(_work, None, 0, mode)
        outcome = "ran"
    except BreakerOpen:
        outcome = "rejected"
    except ConnectionError:
        outcome = "failed"
    return {"outcome": outcome, "state": breaker.state()}


def _work(log: str | None, sleep: float, mode: str) -> str:
    if log:
        with open(log, "a") as f:  # O_APPEND: lines from many processes never interleave
            f.write(f"{os.getpid()} {threading.get_ident()}\n")
    time.sleep(sleep)
    if mode == "fail":
        raise ConnectionError("dependency down")
    return "ok"


def _storm(name: str, threads: str, at: str, sleep: str, mode: str, log: str) -> dict:
    from django.db import connection

    from fortune_project.resilience.breakers import BreakerOpen, get_breaker

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        time.sleep(max(0.0, float(at) - time.time()))
        try:
            get_breaker(name).call(_work, log, float(sleep), mode)
            outcome = "ran"
        except BreakerOpen:
            outcome = "rejected"
        except ConnectionError:
            outcome = "failed"
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    workers = [threading.Thread(target=one) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {key: outcomes[key] for key in ("ran", "failed", "rejected")}


def _state(name: str) -> dict:
    from fortune_project.resilience.breakers import get_breaker

    return {"state": get_breaker(name).state()}


def _snapshot(name: str) -> dict:
    from fortune_project.resilience.breakers import get_breaker

    return get_breaker(name).snapshot()


COMMANDS = {"call": _call, "storm": _storm, "state": _state, "snapshot": _snapshot}


def main() -> None:
    import django

    django.setup()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    from django.conf import settings

    for line in sys.stdin:
        settings.BREAKER_KEY_PREFIX, command, *args = line.split()
        print(json.dumps(COMMANDS[command](*args)), flush=True)


if __name__ == "__main__":
    main()
