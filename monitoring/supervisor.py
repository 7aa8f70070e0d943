"""Runs the whole system on one machine: web (uvicorn), the task cluster and the sweeper.

Each child gets its own session so a terminal's Ctrl-C reaches only us; we stop each by
SIGTERM to its main pid (shared/NOTES.md: a group-wide SIGTERM can hang qcluster) and restart
any child that dies, with a pause so a crash loop cannot spin.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings

from fortune_project import webserver

log = logging.getLogger(__name__)
RESTART_PAUSE = 2.0
STOP_TIMEOUT = 20.0


@dataclass
class Child:
    name: str
    args: list[str]
    popen: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # From the project's root, whatever directory `serve` was started in: the web server imports
        # fortune_project from there.
        self.popen = subprocess.Popen(self.args, start_new_session=True, cwd=settings.BASE_DIR)
        self.started_at = time.monotonic()
        log.info("started %s (pid %s)", self.name, self.popen.pid)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.popen is not None  # alive() is False without one
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %s s; killing it", self.name, STOP_TIMEOUT)
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def manage_py(*args: str) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


def children(host: str, port: int) -> list[Child]:
    return [
        Child("web", webserver.command(host, port)),
        Child("workers", manage_py("qcluster")),
        Child("sweeper", manage_py("sweep_tasks", "--loop")),
    ]


class Supervisor:
    def __init__(self, kids: list[Child]):
        self.kids = kids
        self.stopping = False

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def step(self) -> None:
        """Restart any child that died (one pass; the loop calls this)."""
        for kid in self.kids:
            if not kid.alive() and time.monotonic() - kid.started_at > RESTART_PAUSE:
                if kid.popen is not None:
                    kid.restarts += 1
                    log.warning("%s exited with %s; restarting", kid.name, kid.popen.returncode)
                kid.start()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            while not self.stopping:
                self.step()
                time.sleep(0.5)
        finally:
            for kid in reversed(self.kids):
                kid.stop()
