"""Load from separate processes over loopback, bounded in count and time.

`run_load(...)` starts `processes` children (`python -m bench.load SPEC`, the spec as JSON), each
running `clients` threads with keep-alive connections to 127.0.0.1. Every client repeats its
`mix` of actions until `duration` seconds pass or the process has sent `max_requests`; each
request waits at most `timeout` seconds. A child that outlives duration + timeout + 15 s is
killed. Returns every request as a Record.

Actions: submit (POST a task), get (GET the client's last task), health (the public summary),
trivial and blocking (the bench-only views of bench/site/).
"""

import http.client
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import PYTHON, ROOT

QUESTIONS = [
    "Will my new shop do well?",
    "Does my partner truly love me?",
    "Should I invest my savings now?",
    "Will I pass my final exams?",
    "Where did I lose my wallet?",
    "Is it safe to travel abroad this year?",
]


@dataclass
class Record:
    at: float  # wall-clock start (time.time())
    action: str
    status: int  # 0: no answer (connection error or timeout)
    ms: float
    task: str | None = None
    code: str | None = None  # error code from the JSON body, or the exception's name
    retry_after: bool = False  # 429/503 carried Retry-After
    json_body: bool = True
    user: int = 0  # index of the token the client used

    def ok(self, allowed: tuple[int, ...]) -> bool:
        return self.status in allowed


def run_load(
    port: int,
    tokens: list[str],
    *,
    mix: list[str],
    processes: int = 4,
    clients: int = 32,
    duration: float = 10,
    max_requests: int = 100_000,
    timeout: float = 10,
    rate: float = 0,
    question: str | None = None,
) -> list[Record]:
    """`clients` threads spread over `processes` processes; `rate` (requests/s per client, 0 =
    back to back) paces each client; `max_requests` bounds the whole run."""
    children = []
    for n in range(processes):
        share = clients // processes + (1 if n < clients % processes else 0)
        spec = {
            "port": port,
            "tokens": tokens,
            "mix": mix,
            "clients": share,
            "first_client": sum(clients // processes + (1 if k < clients % processes else 0) for k in range(n)),
            "duration": duration,
            "max_requests": max_requests // processes + (1 if n < max_requests % processes else 0),
            "timeout": timeout,
            "rate": rate,
            "question": question,
        }
        if share:
            proc = subprocess.Popen(
                [PYTHON, "-m", "bench.load", json.dumps(spec)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            children.append(proc)
    records: list[Record] = []
    for proc in children:
        try:
            out, _ = proc.communicate(timeout=duration + timeout + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for row in json.loads(out or "[]"):
            records.append(Record(*row))
    records.sort(key=lambda r: r.at)
    return records


# --- In the child process ---------------------------------------------------------------------


class Client:
    def __init__(self, spec: dict, number: int, out: list[list[Any]], stop_at: float, budget: "Budget"):
        self.spec, self.number, self.out, self.stop_at, self.budget = spec, number, out, stop_at, budget
        self.user = number % len(spec["tokens"])
        self.token = spec["tokens"][self.user]
        self.conn: http.client.HTTPConnection | None = None
        self.last_task: str | None = None
        self.rng = random.Random(number)

    def connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.spec["port"], timeout=self.spec["timeout"])
        return self.conn

    def run(self) -> None:
        mix, rate = self.spec["mix"], self.spec["rate"]
        step = self.number % len(mix)  # clients start at different points of the mix
        next_at = time.monotonic() + (self.rng.random() / rate if rate else 0)
        while time.time() < self.stop_at and self.budget.take():
            if rate:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1 / rate
            self.out.append(self.one(mix[step % len(mix)]))
            step += 1

    def one(self, action: str) -> list[Any]:
        method, path, body = self.request(action)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        started, wall = time.monotonic(), time.time()
        try:
            conn = self.connection()
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status, retry_after = response.status, response.getheader("Retry-After") is not None
        except (OSError, http.client.HTTPException) as exc:
            self.drop()
            ms = (time.monotonic() - started) * 1000
            return [wall, action, 0, ms, None, type(exc).__name__, False, False, self.user]
        ms = (time.monotonic() - started) * 1000
        try:
            payload, is_json = json.loads(raw or b"null"), True
        except ValueError:
            payload, is_json = None, False
        task, code = None, None
        if isinstance(payload, dict):
            if action == "submit" and status == 202:
                task = self.last_task = str(payload.get("id"))
            error = payload.get("error")
            code = error.get("code") if isinstance(error, dict) else None
        return [wall, action, status, ms, task, code, retry_after, is_json, self.user]

    def request(self, action: str) -> tuple[str, str, Any]:
        question = self.spec.get("question") or self.rng.choice(QUESTIONS)
        if action == "get" and self.last_task:
            return "GET", f"/api/v1/async-chat/tasks/{self.last_task}", None
        if action in ("health", "get"):
            return "GET", "/api/v1/async-chat/health", None
        if action == "submit":
            return "POST", "/api/v1/async-chat/tasks", {"question": question}
        if action == "trivial":
            return "GET", "/bench/trivial", None
        if action == "blocking":
            return "POST", "/bench/blocking", {"question": question}
        raise ValueError(f"unknown action {action}")

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Budget:
    """The process's request allowance, shared by its threads."""

    def __init__(self, total: int):
        self.left, self.lock = total, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def main() -> None:
    spec = json.loads(sys.argv[1])
    stop_at = time.time() + spec["duration"]
    budget = Budget(spec["max_requests"])
    outs: list[list[list[Any]]] = [[] for _ in range(spec["clients"])]
    threads = [
        threading.Thread(target=Client(spec, spec["first_client"] + n, outs[n], stop_at, budget).run, daemon=True)
        for n in range(spec["clients"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(spec["duration"] + spec["timeout"] + 5)
    json.dump([row for out in outs for row in list(out)], sys.stdout)


if __name__ == "__main__":
    main()
