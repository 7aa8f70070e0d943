"""Search under a burst: what 80 parallel long searches from one user do to the public health answer.

    .venv/bin/python bench/search_burst.py                          # SEARCH_CONCURRENCY 2 vs 80
    .venv/bin/python bench/search_burst.py --caps 2 --searches 200

For each cap it starts the web server (as `bin/up` does) on a temporary SQLite database with a
three-poem index, signs one user in, fires the searches at once (2,000 characters each, the
throttle raised out of the way) and meanwhile asks `GET /api/v1/async-chat/health` every
100 ms. It prints the searches' answers by status and code, their p50/max time, and the health
answer's p50/max time during the burst.
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fortune_project import webserver  # noqa: E402
from tests.support.cluster import prepare  # noqa: E402
from tests.support.processes import Process, base_env, free_port, run_manage, wait_until  # noqa: E402

QUESTION = ("Will my long journey across the sea end well, and will my family be safe while I am away? " * 25)[:2000]
USER = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"


def call(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict | list, float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw or b"null"), time.monotonic() - started


def burst(cap: int, searches: int, tmp: Path) -> None:
    env = base_env(tmp, SEARCH_CONCURRENCY=str(cap), SEARCH_RATE="100000/min")
    prepare(env, tmp)
    assert run_manage(["shell", "-c", USER], env).returncode == 0
    port = free_port()
    server = Process(
        webserver.command("127.0.0.1", port),
        env,
        tmp / "web.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base), 30, what="the web server")
        token = call(f"{base}/api/v1/auth/token", body={"username": "alice", "password": "alice-pw"})[1]["token"]
        search = search_url(base)
        call(search, token)  # load the model once, as a warm server has
        health: list[float] = []
        stop = threading.Event()

        def poll_health() -> None:
            while not stop.is_set():
                health.append(call(f"{base}/api/v1/async-chat/health")[2])
                time.sleep(0.1)

        poller = threading.Thread(target=poll_health)
        poller.start()
        answers = fire(search, token, searches)
        stop.set()
        poller.join()
    finally:
        server.stop()
    outcomes = tally(answers)
    took = [t for _, _, t in answers]
    print(
        f"SEARCH_CONCURRENCY={cap:<3} searches {outcomes}  search p50 {statistics.median(took):.2f} s "
        f"max {max(took):.2f} s  health p50 {statistics.median(health):.3f} s max {max(health):.3f} s "
        f"({len(health)} polls)"
    )


def search_url(base: str) -> str:
    return f"{base}/api/v1/async-chat/poems/search?" + urllib.parse.urlencode({"q": QUESTION})


Answer = tuple[int, dict | list | None, float]


class Burst:
    """`count` GETs of `url` as one user, sent at the same moment: each client thread starts and
    opens its connection first, and all send when `go()` releases them, so the burst measures
    the server handling the requests, not this process starting 80 threads and connections."""

    def __init__(self, url: str, token: str, count: int):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path, self.token = f"{parts.path}?{parts.query}", token
        self.start = threading.Barrier(count + 1)
        self.answers: list[Answer | None] = [None] * count
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(count)]
        for thread in self.threads:
            thread.start()

    def go(self) -> list[Answer]:
        self.start.wait(timeout=60)  # every client is connected and waiting: release them all
        for thread in self.threads:
            thread.join()
        return [a or (-1, None, 0.0) for a in self.answers]

    def _client(self, n: int) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.connect()
        except OSError:
            pass  # the request below reconnects or fails; counted against the search either way
        self.start.wait(timeout=60)
        started = time.monotonic()
        try:
            connection.request("GET", self.path, headers={"Authorization": f"Bearer {self.token}"})
            response = connection.getresponse()
            status, raw = response.status, response.read()
            self.answers[n] = (status, json.loads(raw or b"null"), time.monotonic() - started)
        except (ValueError, OSError):  # not JSON, or no answer: the acceptance counts it against the search
            self.answers[n] = (-1, None, time.monotonic() - started)
        finally:
            connection.close()


def fire(url: str, token: str, searches: int) -> list[Answer]:
    """`searches` GETs of `url` at once, as one user; (status, JSON body or None, seconds) each."""
    return Burst(url, token, searches).go()


def tally(answers: list[Answer]) -> dict[str, int]:
    """Answers by status and error code, e.g. {"200": 13, "503 rag_busy": 67}."""
    outcomes: dict[str, int] = {}
    for status, body, _ in answers:
        key = f"{status} {body['error']['code']}" if isinstance(body, dict) and "error" in body else str(status)
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


def _up(base: str) -> bool:
    try:
        return call(f"{base}/api/v1/async-chat/health")[0] in (200, 503)
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[2, 80])
    parser.add_argument("--searches", type=int, default=80)
    args = parser.parse_args()
    os.chdir(ROOT)
    for cap in args.caps:
        with tempfile.TemporaryDirectory(prefix="search-burst-") as tmp:
            burst(cap, args.searches, Path(tmp))


if __name__ == "__main__":
    main()
