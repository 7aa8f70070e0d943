"""Real processes for integration tests: a child of `manage.py` (qcluster, fake_llm, daphne…)
or any command, with its own environment, stopped by SIGTERM to its main pid."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET_KEY = "tests-only-child-" + "k" * 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll until `predicate()` is truthy and return its value; fail the test after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM to the main pid only (shared/NOTES.md: the group signal hangs qcluster)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._kill_leftovers()
        self._log.close()
        return self.popen.returncode

    def _kill_leftovers(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def manage(args: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> Process:
    return Process([sys.executable, str(ROOT / "manage.py"), *args], env, log_path, cwd)


def run_manage(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment for a child process with its own embedded store under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "SECRET_KEY"))}
    env.update(
        DJANGO_SETTINGS_MODULE="fortune_project.settings",
        SECRET_KEY=TEST_SECRET_KEY,  # production settings refuse to start without one
        FORTUNE_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'fortune.sqlite3'}",
        CHROMA_PATH=str(tmp_path / "chroma"),
        PYTHONUNBUFFERED="1",
    )
    for name in ("REDIS_URL", "CHROMA_URL", "LLM_BASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    env.update(extra)
    return env
