"""Clients abusing a running Fortune Desk (issue 11): can any of them stall the web process or other users?

    flock /tmp/bench.lock .venv/bin/python bench/abuse.py           # the issue's counts (~2 min)
    flock /tmp/bench.lock .venv/bin/python bench/abuse.py --short   # smaller counts
    flock /tmp/bench.lock .venv/bin/python bench/abuse.py --only search   # one attack (or a few)

It starts its own system on loopback (bench/harness.py, embedded profile: the web server on a temporary
SQLite with the sample poems, no task cluster, so submitted tasks stay queued and active) and
replays each attack of the issue against it, bounded in count and time:

  1. garbage   300 task sockets, each sending one garbage frame
  2. sockets   400 sockets on one active task against 1 (CPU, and how fast 3 changes reach all)
  3. search    80 parallel 2,000-character `GET /poems/search` from one user (its default throttle)
  4. login     11 wrong passwords for one username on POST /api/v1/auth/token, /accounts/login/
               and /admin/login/ (a username each)
  5. share     a user at MAX_ACTIVE_PER_USER submitting fast while another submits once; then 32
               concurrent submits from several users while the backlog is one short of its limit

A separate process asks the public `GET /api/v1/async-chat/health` every 20 ms throughout, so
its figures carry none of this process's own load. For each attack it prints the web process's
CPU, its embedding child's included (% of one core, from /proc/<pid>/stat) during the attack
and in the 5 s after it, and the health p50/p99 during it, next to the same figures on the
idle system (the poller running) measured first in the same run, then whether the attack met
the issue's acceptance numbers. It exits 1 if any check fails.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import PYTHON, System, http, load_average, machine, tree_cpu_seconds  # noqa: E402
from bench.search_burst import Burst, search_url, tally  # noqa: E402
from bench.sockets import fan_out, garbage, set_text, task_path  # noqa: E402
from bench.stats import percentile  # noqa: E402

CAP, BACKLOG = 6, 60  # MAX_ACTIVE_PER_USER and MAX_QUEUED_TASKS of the system under attack
ENV = {
    "WS_MAX_SOCKETS_PER_USER": "0",  # one user opens the hundreds of sockets
    "MAX_ACTIVE_PER_USER": str(CAP),
    "MAX_QUEUED_TASKS": str(BACKLOG),
    "LOG_LEVEL": "INFO",  # the product's default, so the log-lines check sees what production logs
}
FULL = {"garbage": 300, "sockets": 400, "searches": 80}
SHORT = {"garbage": 60, "sockets": 100, "searches": 40}
GUESSES, RACERS = 11, 32
POLL_EVERY = 0.02
IDLE_SECONDS, AFTER_SECONDS = 5.0, 5.0
BACK_TO_IDLE = 5.0  # points of a core above idle that still count as "back to idle"
FILL = """
from django.contrib.auth.models import User
from django.test import override_settings
from chat.models import FortuneTask
from chat.submission import Question, submit_question
filler = User.objects.create_user("filler")
with override_settings(MAX_ACTIVE_PER_USER=0, MAX_QUEUED_TASKS=100000):
    while FortuneTask.objects.filter(status="queued").count() < {wanted}:
        submit_question(filler, Question("Waiting question"))
print(FortuneTask.objects.filter(status="queued").count())
"""


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


@dataclass
class Attack:
    name: str
    label: str  # the table's
    started: float = 0.0
    ended: float = 0.0
    cpu_during: float = 0.0
    cpu_after: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, CPU seconds) after
    checks: list[Check] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(what, ok, detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {detail}", flush=True)

    def cpu_between(self, start: float, end: float) -> float:
        """% of a core between two moments of the after-samples (the nearest samples inside)."""
        inside = [s for s in self.samples if start - 0.05 <= s[0] <= end + 0.05]
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return 100 * (c1 - c0) / max(t1 - t0, 1e-6)


# --- the health poller (a process of its own) ----------------------------------------------------


def poll(url: str, out: Path) -> None:
    """Forever: GET `url`, one line "<monotonic start> <ms> <status>" per answer."""
    with out.open("a", buffering=1) as lines:
        while True:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            lines.write(f"{started:.4f} {1000 * (time.monotonic() - started):.2f} {status}\n")
            time.sleep(POLL_EVERY)


class Health:
    def __init__(self, url: str, workdir: Path):
        self.file = workdir / "health.log"
        self.file.touch()
        self.proc = subprocess.Popen([PYTHON, __file__, "--poll", url, str(self.file)], cwd=ROOT)

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        rows = [line.split() for line in self.file.read_text().splitlines() if line.count(" ") == 2]
        return [(float(ms), int(status)) for t, ms, status in rows if start <= float(t) <= end]

    def slowest(self, start: float, end: float) -> tuple[float, float] | None:
        """(ms, seconds after `start`) of the slowest answer asked between the two moments."""
        rows = [line.split() for line in self.file.read_text().splitlines() if line.count(" ") == 2]
        inside = [(float(ms), float(t) - start) for t, ms, _ in rows if start <= float(t) <= end]
        return max(inside, default=None)

    def figures(self, start: float, end: float) -> tuple[float | None, float | None, int]:
        ms = [m for m, _ in self.between(start, end)]
        return percentile(ms, 50), percentile(ms, 99), len(ms)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- measuring an attack ---------------------------------------------------------------------------


@contextmanager
def measured(label: str, name: str, pid: int) -> Iterator[Attack]:
    print(f"\n{name}", flush=True)
    attack = Attack(name, label)
    attack.started, before = time.monotonic(), tree_cpu_seconds(pid)
    yield attack
    attack.ended, during = time.monotonic(), tree_cpu_seconds(pid)
    attack.cpu_during = 100 * (during - before) / max(attack.ended - attack.started, 1e-6)
    attack.samples.append((attack.ended, during))
    while time.monotonic() < attack.ended + AFTER_SECONDS:
        time.sleep(0.25)
        attack.samples.append((time.monotonic(), tree_cpu_seconds(pid)))
    attack.cpu_after = attack.cpu_between(attack.ended, attack.ended + AFTER_SECONDS)


# --- the attacks -------------------------------------------------------------------------------------


def submit(s: System, token: str, question: str = "Will my new shop do well?") -> tuple[int, dict]:
    status, body, _ = s.api("POST", "/async-chat/tasks", {"question": question}, token, timeout=30)
    return status, body if isinstance(body, dict) else {}


def code(answer: tuple[int, dict]) -> str:
    status, body = answer
    error = body.get("error") if isinstance(body, dict) else None
    return f"{status} {error['code']}" if isinstance(error, dict) else str(status)


def attack_garbage(s: System, pid: int, task_id: str, count: int, idle_cpu: float) -> Attack:
    label, name = f"1 garbage frames x{count}", f"1. garbage: {count} task sockets, one garbage frame each"
    with measured(label, name, pid) as attack:
        path = task_path(task_id, s.tokens[0])
        bad = asyncio.run(garbage(s.web_port, path, count, s.logs / "web.log", frames=1))
    closed = bad["closed_at"]
    settled = attack.cpu_between(closed + 2, closed + AFTER_SECONDS)
    attack.check(
        "every socket closed, none with 1011",
        sum(bad["codes"].values()) == count and 1011 not in bad["codes"] and "reset" not in bad["codes"],
        f"close codes {bad['codes']}",
    )
    attack.check(
        "web CPU back to idle within 2 s of the last close",
        settled <= idle_cpu + BACK_TO_IDLE,
        f"{settled:.1f} % of a core from 2 s to {AFTER_SECONDS:.0f} s after it (idle {idle_cpu:.1f} %)",
    )
    attack.check(
        "at most one log line per bad socket",
        bad["app_lines"] <= count,
        f"{bad['app_lines']} lines from the app, {bad['tracebacks']} tracebacks"
        f" (+{bad['lines'] - bad['app_lines']} of the web server's own lines)",
    )
    return attack


def attack_sockets(s: System, pid: int, task_id: str, count: int) -> Attack:
    db = s.workdir / "fortune.sqlite3"
    label, name = f"2 sockets {count} on a task", f"2. sockets: {count} sockets on one active task against 1"
    with measured(label, name, pid) as attack:
        path = task_path(task_id, s.tokens[0])
        change = lambda n: set_text(db, task_id, "The lantern " * (n + 1))  # noqa: E731
        cost = asyncio.run(fan_out(s.web_port, pid, path, change, count))
    attack.check(
        f"web CPU with {count} sockets at most 3x with 1",
        cost["many"] <= 3 * max(cost["one"], 0.1),
        f"{cost['many']:.1f} % vs {cost['one']:.1f} % of a core ({cost['many'] / max(cost['one'], 0.1):.2f}x)",
    )
    slowest = max(cost["reach_s"])
    attack.check(
        "the task's updates reach every socket within 1 s",
        slowest <= 1.0,
        "changes reached all in " + ", ".join(f"{t:.3f}" for t in cost["reach_s"]) + " s",
    )
    return attack


def attack_search(s: System, pid: int, count: int, health: Health, idle_p99: float) -> Attack:
    label, name = f"3 searches x{count}", f"3. search: {count} parallel 2,000-character searches from one user"
    burst = Burst(search_url(s.base), s.tokens[1], count)  # clients connected before the clock starts
    with measured(label, name, pid) as attack:
        answers = burst.go()
    took = [t for _, _, t in answers]
    attack.check(
        "every search answers 200, 429 or 503 with JSON",
        all(status in (200, 429, 503) and isinstance(body, (dict, list)) for status, body, _ in answers),
        f"{tally(answers)}, slowest {max(took):.2f} s",
    )
    _, p99, polls = health.figures(attack.started, attack.ended)
    worst = health.slowest(attack.started, attack.ended)
    when = f"; the slowest asked {worst[1]:.2f} s into the {attack.ended - attack.started:.2f} s burst" if worst else ""
    attack.check(
        "public health p99 at most 3x its idle p99",
        p99 is not None and p99 <= 3 * idle_p99,
        f"{p99 or 0:.1f} ms vs idle {idle_p99:.1f} ms ({(p99 or 0) / idle_p99:.2f}x, {polls} polls{when})",
    )
    return attack


def attack_login(s: System, pid: int) -> Attack:
    label, name = (
        f"4 passwords {GUESSES} x3",
        f"4. login: {GUESSES} wrong passwords per username, API and both login pages",
    )
    with measured(label, name, pid) as attack:
        api = [
            s.api("POST", "/auth/token", {"username": "bench4", "password": f"wrong-{n}"})[0:3:2]
            for n in range(GUESSES)
        ]
        pages = {path: form_guesses(s.base, path, user) for path, user in PAGES.items()}
    statuses = [status for status, _ in api]
    attack.check(
        "API: the 11th wrong password gets 429 with Retry-After",
        statuses[-1] == 429 and 429 not in statuses[:-1] and bool(api[-1][1].get("Retry-After")),
        f"answers {summary(statuses)}",
    )
    for path, (answers, form) in pages.items():
        attack.check(
            f"{path}: the 11th gets 429 with the form's error",
            answers[-1] == 429 and form and all(a == 200 for a in answers[:-1]),
            f"answers {summary(answers)}" + ("" if form else ", the last without the form's error"),
        )
    return attack


PAGES = {"/accounts/login/": "bench5", "/admin/login/": "bench6"}


def form_guesses(base: str, path: str, username: str) -> tuple[list[int], bool]:
    """GUESSES wrong passwords through the login form (its CSRF token and cookie) as a browser would:
    the answers' statuses, and whether the last one is the form again (with its error)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    statuses = []
    for n in range(GUESSES):
        page = opener.open(f"{base}{path}", timeout=30).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        form = {"username": username, "password": f"wrong-{n}", "csrfmiddlewaretoken": csrf.group(1) if csrf else ""}
        request = urllib.request.Request(f"{base}{path}", data=urllib.parse.urlencode(form).encode())
        request.add_header("Referer", f"{base}{path}")
        try:
            with opener.open(request, timeout=30) as response:
                statuses.append(response.status)
                last = response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
            last = error.read().decode(errors="replace")
    return statuses, "<form" in last and ('role="alert"' in last or "errornote" in last)  # ours, the admin's


def summary(statuses: list) -> str:
    """[401, 401, 429] -> "401 x2, then 429"."""
    runs: list[list] = []
    for status in statuses:
        if runs and runs[-1][0] == status:
            runs[-1][1] += 1
        else:
            runs.append([status, 1])
    return ", then ".join(f"{status} x{n}" if n > 1 else str(status) for status, n in runs)


def attack_share(s: System, pid: int) -> Attack:
    label, name = (
        "5 fair share",
        f"5. share: a user at the cap ({CAP}) vs another; {RACERS} submits at a backlog one short",
    )
    with measured(label, name, pid) as attack:
        greedy, other = s.tokens[6], s.tokens[7]  # bench7, bench8
        filled = [code(submit(s, greedy, f"Question {n}")) for n in range(CAP)]
        with ThreadPoolExecutor(10) as pool:
            flood = [pool.submit(submit, s, greedy, f"More {n}") for n in range(30)]
            time.sleep(0.05)
            polite = submit(s, other, "Will my sister's wedding go well?")
            refused = [code(f.result()) for f in flood]
        queued = int(s.manage("shell", "-c", FILL.format(wanted=BACKLOG - 1)).split()[-1])
        racers = [s.tokens[i % 7 if i % 7 < 6 else 7] for i in range(RACERS)]  # bench1-6 and bench8
        gate = threading.Barrier(RACERS)

        def race(token: str) -> str:
            gate.wait(30)
            return code(submit(s, token, "Will the harvest be good?"))

        with ThreadPoolExecutor(RACERS) as pool:
            raced = list(pool.map(race, racers))
    attack.check(
        "a user at their cap cannot stop another user's submit",
        polite[0] == 202 and all(c == "202" for c in filled) and set(refused) == {"429 too_many_active_tasks"},
        f"the greedy user's {CAP} then {len(refused)}: {count_of(filled)} then {count_of(refused)};"
        f" the other's: {code(polite)}",
    )
    attack.check(
        f"{RACERS} concurrent submits, backlog {queued} of {BACKLOG}: exactly one accepted",
        raced.count("202") == 1 and queued == BACKLOG - 1,
        count_of(raced),
    )
    return attack


def count_of(codes: list[str]) -> str:
    return ", ".join(f"{c} x{codes.count(c)}" for c in sorted(set(codes)))


# --- the run -------------------------------------------------------------------------------------


ATTACKS = ("garbage", "sockets", "search", "login", "share")


def run(short: bool, only: list[str] | None = None) -> int:
    counts = SHORT if short else FULL
    started_load = load_average()
    with tempfile.TemporaryDirectory(prefix="abuse-") as tmp:
        s = System("embedded", Path(tmp), env_overrides=ENV)
        health: Health | None = None
        try:
            s.setup()
            s.manage("collectstatic", "--noinput", "-v0")  # the login pages' stylesheets, as `serve` has
            s.start_web()
            s.sign_in()
            pid = s.procs["web"].pid
            status, body = submit(s, s.tokens[0])
            assert status == 202, (status, body)
            task_id = str(body["id"])
            # A warm server: the embedding model loaded (by another user) before the idle figures.
            http("GET", search_url(s.base), token=s.tokens[2], timeout=60)
            health = Health(f"{s.api_base}/async-chat/health", s.workdir)
            time.sleep(1)
            print(f"idle: {IDLE_SECONDS:.0f} s with only the health poller", flush=True)
            idle_start, before = time.monotonic(), tree_cpu_seconds(pid)
            time.sleep(IDLE_SECONDS)
            idle_end = time.monotonic()
            idle_cpu = 100 * (tree_cpu_seconds(pid) - before) / (idle_end - idle_start)
            idle_p50, idle_p99, idle_polls = health.figures(idle_start, idle_end)
            assert idle_p50 is not None and idle_p99 is not None, "the health poller got no answer"
            plan = {
                "garbage": lambda: attack_garbage(s, pid, task_id, counts["garbage"], idle_cpu),
                "sockets": lambda: attack_sockets(s, pid, task_id, counts["sockets"]),
                "search": lambda: attack_search(s, pid, counts["searches"], health, idle_p99),
                "login": lambda: attack_login(s, pid),
                "share": lambda: attack_share(s, pid),
            }
            attacks = [attack() for name, attack in plan.items() if not only or name in only]
            table(attacks, health, (idle_cpu, idle_p50, idle_p99, idle_polls), started_load)
        finally:
            if health:
                health.stop()
            s.teardown()
    failed = [c for a in attacks for c in a.checks if not c.ok]
    print(f"\n{len(failed)} check(s) failed" if failed else "\nevery check passed")
    return 1 if failed else 0


def table(attacks: list[Attack], health: Health, idle: tuple, started_load: float) -> None:
    idle_cpu, idle_p50, idle_p99, idle_polls = idle
    info = machine()
    print(
        f"\n{info['cpus']} x {info['cpu_model'] or 'CPU'}, Python {info['python']};"
        f" load average {started_load:.2f} at start, {load_average():.2f} at the end"
    )
    print(f"{'':24}  {'web CPU, % of a core':>20}  {'public health, ms':>17}")
    print(f"{'attack':24}  {'during':>8} {'5 s after':>11}  {'p50':>8} {'p99':>8}  checks")
    print(
        f"{'idle (poller only)':24}  {idle_cpu:>8.1f} {'':>11}  {idle_p50:>8.1f} {idle_p99:>8.1f}  ({idle_polls} polls)"
    )
    for a in attacks:
        p50, p99, polls = health.figures(a.started, a.ended)
        passed = sum(c.ok for c in a.checks)
        print(
            f"{a.label:24}  {a.cpu_during:>8.1f} {a.cpu_after:>11.1f}  {p50 or 0:>8.1f} {p99 or 0:>8.1f}"
            f"  {passed}/{len(a.checks)} pass ({polls} polls)"
        )
    for a in attacks:
        for c in a.checks:
            if not c.ok:
                print(f"FAIL {a.label}: {c.what}: {c.detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="smaller counts: " + json.dumps(SHORT))
    parser.add_argument("--only", nargs="+", choices=ATTACKS, help="run only these attacks (after the idle figures)")
    parser.add_argument("--poll", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poll:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        poll(args.poll[0], Path(args.poll[1]))
        return
    os.chdir(ROOT)
    signal.alarm(1200)  # bounded in time: set-up, six measurements and their pauses take ~3 min
    sys.exit(run(args.short, args.only))


if __name__ == "__main__":
    main()
