"""A whole Fortune Desk system on loopback, in a scratch directory, for benchmarks and drills.

Profiles:
  embedded   SQLite file, Django-Q2's ORM broker, the database cache, an embedded Chroma store
  scaleout   a fresh PostgreSQL database (127.0.0.1:5432), a private redis-server (broker, cache,
             channel layer) and a `chroma run` server

The processes are the ones `manage.py serve` supervises (Daphne, qcluster, sweep_tasks --loop),
started one by one so a drill can kill or restart each, plus `manage.py fake_llm` as the LLM. The
web process and the cluster run with `bench.site.settings`: the product's settings plus the
bench-only views (bench/site/) and a query counter, never mounted by the product itself.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fortune_project import webserver

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
SAMPLE_POEMS = ROOT / "rag" / "data" / "sample_poems.jsonl"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEM_REDIS = ("127.0.0.1", 6379)
USERS = 8  # load is spread over several users (the per-user active-task cap)
PASSWORD = "bench-password-1"
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")

# Settings every bench system runs with; a benchmark or drill overrides what it studies.
BASE_ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.site.settings",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
    "DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    "LLM_MODEL": "fake-llm",
    "OPENAI_API_KEY": "",
    "LLM_TIMEOUT": "20",
    "LLM_CHUNK_TIMEOUT": "10",
    "TASK_TIMEOUT": "60",
    "TASK_GRACE": "3",
    "MAX_QUEUED_TASKS": "100000",
    "MAX_QUEUE_AGE": "3600",
    "MAX_ACTIVE_PER_USER": "100000",
    "SUBMIT_RATE": "100000/min",
    "BREAKER_LLM_RECOVERY": "600",  # a benchmark opens it on purpose; drills set their own
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A child in its own session, logging to a file; stopped by SIGTERM to its main pid
    (shared/NOTES.md: a group-wide SIGTERM can hang qcluster), killed by SIGKILL to its group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path):
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole group: the main pid and every child it forked."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def manage_args(*args: str) -> list[str]:
    return [PYTHON, str(ROOT / "manage.py"), *args]


def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON or None, headers by their usual spelling, "Retry-After", whatever case
    the server sent them in). Connection errors raise OSError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, _json(raw), _headers(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read()), _headers(error.headers)


def _headers(message: Any) -> dict[str, str]:
    return {name.title(): value for name, value in message.items()}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB, from /proc; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of every process below it (the web server's embedding child)."""
    return sum(cpu_seconds(p) for p in [pid, *descendants(pid)])


def descendants(pid: int) -> list[int]:
    """Every live process below pid (from /proc's parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), ""
        )
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "load_average_at_start": round(load_average(), 2),
    }


# --- Outside services -------------------------------------------------------------------------


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers on 127.0.0.1:5432, else the reason."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2).close()
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})"
    return None


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def scaleout_unavailable() -> str | None:
    """Why the scale-out profile cannot run here, or None."""
    reason = postgres_reachable()
    if reason:
        return reason
    if not redis_server_binary() and not port_open(SYSTEM_REDIS[1]):
        return "no redis-server binary and no Redis at 127.0.0.1:6379"
    return None


@contextmanager
def scratch_postgres() -> Iterator[str]:
    import psycopg

    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    name = f"fortune_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class RedisServer:
    """A private redis-server on a free port (no persistence), so a drill may restart it without
    touching the machine's own Redis."""

    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_server_binary()
        assert binary, "redis-server not installed"
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.proc = Proc("redis", args, dict(os.environ), self.workdir / "redis.log")
        wait_until(lambda: port_open(self.port), 20, what="redis-server")

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None


class ChromaServer:
    """`chroma run` over a directory; stop() and start() again keep the data."""

    def __init__(self, path: Path, log_dir: Path):
        self.path, self.log_dir, self.port = path, log_dir, free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self) -> None:
        chroma = str(Path(PYTHON).parent / "chroma")
        args = [chroma, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)]
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        self.proc = Proc("chroma", args, env, self.log_dir / "chroma.log")
        wait_until(self.healthy, 90, interval=0.2, what="chroma run")

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc = None


# --- The system -------------------------------------------------------------------------------


@dataclass
class System:
    profile: str
    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    poems_per_temple: int | None = None
    chroma_server: bool = False

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.query_log = self.workdir / "queries"
        self.query_log.mkdir(exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self.tokens: list[str] = []
        self.staff_token = ""
        self.web_port = free_port()
        self.llm_port = free_port()
        self.redis: RedisServer | None = None
        self.chroma: ChromaServer | None = None
        self._pg: Any = None
        self.database_url = f"sqlite:///{self.workdir / 'fortune.sqlite3'}"
        self.redis_url = ""

    # --- environment ---
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v1"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
        for name in ("REDIS_URL", "CHROMA_URL", "LLM_BASE_URL", "OPENAI_API_KEY", "DATABASE_URL"):
            env.pop(name, None)
        env.update(BASE_ENV)
        env.update(
            FORTUNE_VAR_DIR=str(self.workdir),
            DATABASE_URL=self.database_url,
            CHROMA_PATH=str(self.workdir / "chroma"),
            LLM_BASE_URL=f"http://127.0.0.1:{self.llm_port}/v1",
            BENCH_QUERY_LOG=str(self.query_log),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.chroma:
            env["CHROMA_URL"] = self.chroma.url
        env.update(self.env_overrides)
        env.update(extra)
        return env

    # --- set up and tear down ---
    def setup(self) -> None:
        """Outside services, the database, the poems and their index, the users."""
        self.start_fake_llm()
        if self.profile == "scaleout":
            self._pg = scratch_postgres()
            self.database_url = self._pg.__enter__()
            if redis_server_binary():
                self.redis = RedisServer(self.workdir)
                self.redis.start()
                self.redis_url = self.redis.url
            else:  # the machine's own Redis, on a database of our own
                self.redis_url = "redis://127.0.0.1:6379/13"
            self.chroma_server = True
        if self.chroma_server:
            self.chroma = ChromaServer(self.workdir / "chroma-server", self.logs)
            self.chroma.start()
        if self.profile == "embedded" and self._from_template():
            return
        self.manage("migrate", "-v0")
        self.manage("createcachetable")
        self.manage("load_poems", str(self._poems_file()), timeout=900)
        self.manage("shell", "-c", CREATE_USERS.format(users=USERS, password=PASSWORD))
        if self.profile == "embedded" and not self.chroma:
            self._save_template()

    # An embedded system's prepared database and index, kept in the temp directory and keyed by
    # everything that shapes them, so the next run (CI runs bench and chaos) skips ~30 s of set-up.
    def _template(self) -> Path:
        digest = hashlib.sha256()
        for path in sorted(ROOT.glob("*/migrations/*.py")) + [self._poems_file(), Path(__file__)]:
            digest.update(path.name.encode() + path.read_bytes())
        return Path(tempfile.gettempdir()) / f"fortune-bench-template-{digest.hexdigest()[:16]}"

    def _from_template(self) -> bool:
        template = self._template()
        if self.chroma or not (template / "ready").exists():
            return False
        for db in template.glob("fortune.sqlite3*"):  # with its WAL, if one is left
            shutil.copy(db, self.workdir / db.name)
        shutil.copytree(template / "chroma", self.workdir / "chroma", dirs_exist_ok=True)
        return True

    def _save_template(self) -> None:
        template = self._template()
        partial = template.with_name(f"{template.name}-{os.getpid()}")
        try:
            partial.mkdir()
            for db in self.workdir.glob("fortune.sqlite3*"):
                shutil.copy(db, partial / db.name)
            shutil.copytree(self.workdir / "chroma", partial / "chroma")
            (partial / "ready").touch()
            partial.rename(template)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)

    def teardown(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        self.procs.clear()
        if self.chroma:
            self.chroma.kill()
        if self.redis:
            self.redis.stop()
        if self._pg is not None:
            self._pg.__exit__(None, None, None)
            self._pg = None

    def _poems_file(self) -> Path:
        if not self.poems_per_temple:
            return SAMPLE_POEMS
        rows = [json.loads(x) for x in SAMPLE_POEMS.read_text().splitlines() if x.strip()]
        path = self.workdir / "poems.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if int(r["number"]) <= self.poems_per_temple))
        return path

    def manage(self, *args: str, timeout: float = 300, **extra: str) -> str:
        done = subprocess.run(
            manage_args(*args), cwd=ROOT, env=self.env(**extra), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done.stdout

    # --- processes ---
    def start_fake_llm(self) -> None:
        args = manage_args("fake_llm", "--port", str(self.llm_port), "--mode", "ok")
        env = self.env(DJANGO_SETTINGS_MODULE="fortune_project.settings")
        self.procs["llm"] = Proc("llm", args, env, self.logs / "fake_llm.log")
        wait_until(lambda: port_open(self.llm_port), 60, what="fake_llm")

    def start_web(self) -> None:
        self.procs["web"] = Proc(
            "web", webserver.command("127.0.0.1", self.web_port), self.env(), self.logs / "web.log"
        )
        wait_until(lambda: self._answers(), 90, interval=0.2, what=f"the web server ({self.logs / 'web.log'})")

    def _answers(self) -> bool:
        try:
            return http("GET", f"{self.base}/bench/trivial", timeout=2)[0] == 200
        except OSError:
            return False

    def start_cluster(self, extra: dict[str, str] | None = None, wait: bool = True) -> Proc:
        proc = Proc("cluster", manage_args("qcluster"), self.env(**(extra or {})), self.logs / "qcluster.log")
        self.procs["cluster"] = proc
        if wait:
            self.wait_workers_ready(proc)
        return proc

    def start_sweeper(self) -> None:
        self.procs["sweeper"] = Proc(
            "sweeper", manage_args("sweep_tasks", "--loop"), self.env(), self.logs / "sweeper.log"
        )

    def start(self) -> None:
        self.start_web()
        self.sign_in()
        self.start_sweeper()
        self.start_cluster()

    def stop_cluster(self) -> None:
        proc = self.procs.pop("cluster", None)
        if proc:
            proc.stop()

    def restart_cluster(self, **extra: str) -> float:
        """Stop the cluster, start a fresh one; seconds until its workers were ready."""
        self.stop_cluster()
        started = time.monotonic()
        self.start_cluster(extra)
        return time.monotonic() - started

    def workers(self) -> list[dict]:
        try:
            status, body, _ = self.api("GET", "/monitoring/worker-pool", token=self.staff_token)
        except OSError:  # a web process too busy to answer within 10 s: ask again later
            return []
        return list(body.get("workers", [])) if status == 200 and isinstance(body, dict) else []

    def cluster_worker_pids(self, proc: Proc | None = None) -> list[int]:
        """Worker pids of the running cluster, as its pool reports them (live and ours)."""
        proc = proc or self.procs.get("cluster")
        if proc is None:
            return []
        mine = set(descendants(proc.pid))
        return [int(w["pid"]) for w in self.workers() if int(w["pid"]) in mine]

    def wait_workers_ready(self, proc: Proc, timeout: float = 120) -> None:
        """Until every worker of this cluster has recorded itself idle (after its warm-up)."""
        count = int(self.env().get("FORTUNE_WORKERS", "3"))

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"qcluster exited:\n{proc.tail()}")
            mine = set(descendants(proc.pid))
            # A worker without a record shows as idle in the pool, but has not warmed up yet:
            # it writes its first record only after its warm-up (chat/signals.py).
            warm = [w for w in self.workers() if int(w["pid"]) in mine and w.get("last_seen")]
            return len(warm) >= count and all(w.get("state") == "idle" for w in warm)

        wait_until(ready, timeout, interval=0.2, what=f"{count} idle workers ({proc.log_path})")

    # --- API ---
    def api(self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 10) -> tuple:
        return http(method, f"{self.api_base}{path}", body, token, timeout)

    def sign_in(self) -> None:
        """A token per user from POST /api/v1/auth/token, as a client would get one."""
        self.tokens = [self._token(f"bench{n}") for n in range(1, USERS + 1)]
        self.staff_token = self._token("bench-staff")

    def _token(self, username: str) -> str:
        status, body, _ = self.api("POST", "/auth/token", {"username": username, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"sign-in as {username} answered {status}: {body}")
        return str(body["token"])

    def task(self, task_id: str, token: str) -> dict:
        try:
            status, body, _ = self.api("GET", f"/async-chat/tasks/{task_id}", token=token)
        except OSError as exc:
            return {"id": task_id, "status": f"unreachable ({type(exc).__name__})"}
        return body if status == 200 else {"id": task_id, "status": f"http_{status}"}

    def wait_terminal(self, owned: list[tuple[str, str]], timeout: float) -> dict[str, dict]:
        """Poll (task id, token) pairs until all are terminal or timeout passes; their last JSON."""
        found: dict[str, dict] = {}
        end = time.monotonic() + timeout
        while True:
            for task_id, token in owned:
                if found.get(task_id, {}).get("status") not in TERMINAL:
                    found[task_id] = self.task(task_id, token)
            if all(t.get("status") in TERMINAL for t in found.values()) or time.monotonic() > end:
                return found
            time.sleep(0.25)

    def breaker(self, name: str, action: str) -> dict:
        status, body, _ = self.api("POST", f"/monitoring/circuit-breakers/{name}/{action}", token=self.staff_token)
        if status != 200:
            raise RuntimeError(f"breaker {name} {action}: {status} {body}")
        return dict(body)

    def breakers(self) -> dict[str, str]:
        status, body, _ = self.api("GET", "/monitoring/circuit-breakers", token=self.staff_token)
        return {b["name"]: b["state"] for b in body} if status == 200 else {}

    def llm(self, **changes: Any) -> dict:
        """Switch the fake LLM (mode, latency, chunk_delay, reset)."""
        status, body, _ = http("POST", f"http://127.0.0.1:{self.llm_port}/control", changes)
        assert status == 200, body
        return dict(body)

    def llm_calls(self) -> int:
        _, body, _ = http("GET", f"http://127.0.0.1:{self.llm_port}/control")
        return int(body["calls"].get("chat_stream", 0))

    def queries(self) -> int:
        """Database queries run so far by every bench process (bench/site/querycount.py)."""
        total = 0
        for path in self.query_log.iterdir():
            try:
                total += int(path.read_text() or 0)
            except (OSError, ValueError):
                pass
        return total


CREATE_USERS = """
from django.contrib.auth.models import User
for n in range(1, {users} + 1):
    name = f"bench{{n}}"
    User.objects.filter(username=name).exists() or User.objects.create_user(name, password="{password}")
User.objects.filter(username="bench-staff").exists() or User.objects.create_user(
    "bench-staff", password="{password}", is_staff=True
)
"""


def llm_pieces() -> int:
    """How many chunks the fake LLM's ok-mode reading streams (each after `chunk_delay`)."""
    sys.path.insert(0, str(ROOT))
    from monitoring.drills.fake_llm import READING, split_words

    return len(split_words(READING, 10))
