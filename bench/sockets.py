"""WebSocket cost and abuse benchmark against the real web server (issue 11, "clients cannot hang the backend").

    .venv/bin/python bench/sockets.py                  # 400 sockets on one task, 100 garbage sockets
    .venv/bin/python bench/sockets.py --sockets 1000 --garbage 300

Everything lives in a temporary directory (SQLite database, the web server's log). It starts the web server alone
(no workers: the task stays queued and the bench writes its progress into the row itself), then
prints the web process's CPU use while idle, with 1 socket and with N sockets on one task, how
long a change takes to reach all N, what 100 sockets sending garbage get back (close codes, log
lines, CPU afterwards), and what a malformed task id and an unknown path get (close codes, never
an HTTP 500). The WebSocket client (tests/support/wsclient.py) is a few lines over asyncio streams.
"""

import argparse
import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fortune_project import webserver  # noqa: E402
from tests.support.wsclient import Socket, connect  # noqa: E402

# The web server's own lines: uvicorn's access log ('INFO:     127.0.0.1:40000 - "WebSocket /ws/..."
# [accepted]') and its "connection open" / "connection closed" for every socket.
SERVER_LINE = re.compile(r'^INFO:\s+(\S+:\d+ - "|connection (open|closed))')

SETUP = """
from django.contrib.auth.models import User
from django.test import Client
from chat.submission import Question, submit_question
from rag.models import TOPICS, Poem, Temple
alice = User.objects.create_user("alice", password="alice-pw")
temple = Temple.objects.create(slug="jade-harbor", name="Jade Harbor Temple")
poem = Poem.objects.create(temple=temple, number=1, title="t", rank="r", verse="v", meaning="m",
                           advice={t: "a" for t in TOPICS})
task = submit_question(alice, Question("Will my new shop do well?", poem=poem))[0]
client = Client()
client.force_login(alice)
print(task.id, client.cookies["sessionid"].value)
"""


# --- the server --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_share(pid: int, seconds: float) -> float:
    """The web process's CPU use over `seconds`, as a percentage of one core."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / seconds


def start(workdir: Path, port: int) -> tuple[subprocess.Popen, dict, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="fortune_project.settings",
        FORTUNE_VAR_DIR=str(workdir),
        DATABASE_URL=f"sqlite:///{workdir / 'fortune.sqlite3'}",
        SECRET_KEY=env.get("SECRET_KEY") or "bench-only-" + "k" * 50,
        WS_MAX_SOCKETS_PER_USER="0",
        LOG_LEVEL="INFO",
    )
    for name in ("REDIS_URL", "CHROMA_URL", "LLM_BASE_URL"):
        env.pop(name, None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    task_id, cookie = out.stdout.split()[-2:]
    log = open(workdir / "web.log", "wb")
    server = subprocess.Popen(
        webserver.command("127.0.0.1", port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return server, env, task_id, cookie


async def wait_for_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise SystemExit("the web server did not start")


def task_path(task_id: str, token: str = "") -> str:
    return f"/ws/async-chat/tasks/{task_id}/" + (f"?token={token}" if token else "")


def set_text(db: Path, task_id: str, text: str) -> None:
    with sqlite3.connect(db, timeout=20) as conn:
        conn.execute("UPDATE chat_fortunetask SET partial_text = ? WHERE id = ?", (text, task_id.replace("-", "")))


# --- the scenarios (bench/abuse.py runs them too, against its own system) --------------------


async def watchers(port: int, path: str, count: int, cookie: str = "") -> list[Socket]:
    """`count` sockets open on `path`, each past its first task.update."""
    sockets = [await connect(port, path, cookie) for _ in range(count)]
    for ws in sockets:
        await ws.frame()  # the first task.update
    return sockets


async def fan_out(port: int, pid: int, path: str, change: Callable[[int], None], count: int, cookie: str = "") -> dict:
    """CPU with 1 socket on a task and with `count`, and how long `change(n)` takes to reach all."""
    figures: dict = {"idle": await cpu_share(pid, 3)}
    one = await watchers(port, path, 1, cookie)
    figures["one"] = await cpu_share(pid, 5)
    many = await watchers(port, path, count - 1, cookie) + one
    figures["many"] = await cpu_share(pid, 5)
    figures["reach_s"] = []
    for n in range(3):
        started = time.monotonic()
        change(n)
        await asyncio.gather(*(ws.frame() for ws in many))
        figures["reach_s"].append(time.monotonic() - started)
    for ws in many:
        ws.drop()
    return figures


async def garbage(port: int, path: str, count: int, log: Path, frames: int = 3, cookie: str = "") -> dict:
    """`count` sockets each sending `frames` garbage frames: their close codes and the log lines."""
    lines_before = len(log.read_text(errors="replace").splitlines())
    sockets = await watchers(port, path, count, cookie)
    for ws in sockets:
        for _ in range(frames):
            ws.send_text("garbage")
    codes = await asyncio.gather(*(ws.close_code() for ws in sockets))
    closed_at = time.monotonic()
    for ws in sockets:
        ws.drop()
    await asyncio.sleep(1)
    new_lines = log.read_text(errors="replace").splitlines()[lines_before:]
    return {
        "codes": {code: codes.count(code) for code in set(codes)},
        "closed_at": closed_at,
        "about_frames": len([line for line in new_lines if "1003" in line]),
        "tracebacks": len([line for line in new_lines if "Traceback" in line]),
        "app_lines": len([line for line in new_lines if not SERVER_LINE.search(line)]),
        "lines": len(new_lines),
    }


async def one_garbage_frame(port: int, task_id: str, cookie: str) -> None:
    [ws] = await watchers(port, task_path(task_id), 1, cookie)
    ws.send_text("garbage")
    print(f"1 socket x 1 garbage frame: close {await ws.close_code()}")
    ws.drop()


async def bad_paths(port: int, task_id: str, cookie: str) -> None:
    for path in ("/ws/async-chat/tasks/zzz/", "/ws/nothing-here/", f"/ws/async-chat/tasks/{task_id}/extra/"):
        ws = await connect(port, path, cookie)
        code = await ws.close_code() if ws.status == 101 else None
        ws.drop()
        print(f"{path}: HTTP {ws.status}, close {code}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir, port = Path(tmp), args.port
        server, env, task_id, cookie = start(workdir, port)
        try:
            await wait_for_port(port)
            db, path, count = workdir / "fortune.sqlite3", task_path(task_id), args.sockets
            cost = await fan_out(
                port, server.pid, path, lambda n: set_text(db, task_id, "The lantern" * (n + 1)), count, cookie
            )
            print(f"idle, no sockets:     {cost['idle']:5.1f} % of a core")
            print(f"1 socket on a task:   {cost['one']:5.1f} % of a core")
            print(f"{count} sockets on it:    {cost['many']:5.1f} % of a core")
            for n, seconds in enumerate(cost["reach_s"]):
                print(f"change {n + 1} reached all {count} sockets in {seconds:.3f} s")
            await asyncio.sleep(1)
            print(f"after they left:      {await cpu_share(server.pid, 3):5.1f} % of a core")
            bad = await garbage(port, path, args.garbage, workdir / "web.log", cookie=cookie)
            print(
                f"{args.garbage} sockets x 3 garbage frames: close codes {bad['codes']}; log: {bad['about_frames']}"
                f" lines about the frames, {bad['tracebacks']} tracebacks, {bad['lines']} lines in all"
                f" ({bad['lines'] - bad['app_lines']} of them the web server's own access log)"
            )
            print(f"afterwards:           {await cpu_share(server.pid, 3):5.1f} % of a core")
            await one_garbage_frame(port, task_id, cookie)
            await bad_paths(port, task_id, cookie)
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=400)
    parser.add_argument("--garbage", type=int, default=100)
    parser.add_argument("--port", type=int, default=8765)
    asyncio.run(main(parser.parse_args()))
