"""LLM failover with real processes: a qcluster and two `manage.py fake_llm` servers (the primary
and the fallback `backup`), on SQLite and on the scale-out profile (PostgreSQL + Redis).

One walk down and back up the ladder per profile: the primary hangs and the fallback answers;
once the primary's breaker opens, readings reach the fallback without calling the primary; both
failing leaves the offline reader with both reasons; the primary heals, `reset_breakers llm`
reaches every worker and traffic returns to it."""

import json
import sqlite3

import pytest
import redis

from tests.support import cluster as c
from tests.support.processes import base_env, run_manage, wait_until
from tests.support.services import require_redis, scratch_postgres

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.support.fake_llm", "tests.support.fake_backup"]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
QUERY = "SELECT id, status, result, timings, finished_at <= deadline FROM chat_fortunetask"

FIGURES = """
import json
from django.utils import timezone
from chat.llm_stats import endpoint_figures, primary_bypassed_since
from monitoring.prometheus import exposition
now = timezone.now()
print("FIGURES=" + json.dumps(endpoint_figures(now)))
print("BYPASSED=" + json.dumps(primary_bypassed_since(now, 3600, 900) is not None))
print("METRICS=" + json.dumps([l for l in exposition().decode().splitlines() if l.startswith("fortune_llm_calls")]))
"""


def _canonical(task_id) -> str:
    task_id = str(task_id)
    if len(task_id) == 32:  # SQLite stores UUIDs without dashes
        return f"{task_id[:8]}-{task_id[8:12]}-{task_id[12:16]}-{task_id[16:20]}-{task_id[20:]}"
    return task_id


def read_tasks(env: dict[str, str]) -> dict[str, dict]:
    """Task rows straight from the profile's database: {id: {status, result, timings, in_time}}."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20) as conn:
            rows = conn.execute(QUERY).fetchall()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(QUERY).fetchall()
    load = lambda raw: json.loads(raw) if isinstance(raw, str) else raw  # noqa: E731 (jsonb arrives decoded)
    return {
        _canonical(i): {"status": s, "result": load(r) or {}, "timings": load(t) or {}, "in_time": bool(d)}
        for i, s, r, t, d in rows
    }


def run(env: dict[str, str], count: int) -> list[dict]:
    ids = c.submit(env, count)
    wait_until(lambda: all(read_tasks(env)[i]["status"] in TERMINAL for i in ids), 90, interval=0.3, what="tasks")
    rows = read_tasks(env)
    return [rows[i] for i in ids]


def llm_reasons(row: dict) -> list[str]:
    return [r for r in row["result"]["degraded_reasons"] if r.startswith("llm")]


def failover_env(tmp_path, primary, backup, **extra) -> dict[str, str]:
    return base_env(
        tmp_path,
        TASK_TIMEOUT="30",
        TASK_GRACE="1",
        RAG_TIMEOUT="3",
        LLM_TIMEOUT="8",
        LLM_CHUNK_TIMEOUT="3",  # how long a hung endpoint holds a reading; a busy machine needs the margin
        FORTUNE_WORKERS="2",
        LLM_BASE_URL=primary.base_url,
        LLM_MODEL="fake-llm",
        LLM_FALLBACKS="backup",
        LLM_FALLBACK_BACKUP_BASE_URL=backup.base_url,
        LLM_FALLBACK_BACKUP_MODEL="fake-backup",
        BREAKER_LLM_THRESHOLD="2",
        BREAKER_LLM_RECOVERY="600",  # only the operator's reset closes it within the test
        **extra,
    )


@pytest.fixture
def servers(fake_llm_server, fake_backup_server):
    for server in (fake_llm_server, fake_backup_server):
        server.control(mode="ok", latency=1.0, chunk_delay=0.02, reset=True)
    return fake_llm_server, fake_backup_server


@pytest.fixture
def sqlite_env(tmp_path, servers):
    env = failover_env(tmp_path, *servers)
    c.prepare(env, tmp_path)
    return env


@pytest.fixture
def scaleout_env(tmp_path, servers):
    redis_url = require_redis(db=13)
    redis.Redis.from_url(redis_url).flushdb()
    with scratch_postgres() as database_url:
        env = failover_env(tmp_path, *servers, DATABASE_URL=database_url, REDIS_URL=redis_url)
        c.prepare(env, tmp_path)
        yield env
    redis.Redis.from_url(redis_url).flushdb()


def walk_the_ladder(env, tmp_path, primary, backup) -> None:
    cluster = c.start_cluster(env, tmp_path)
    try:
        # The primary hangs: each reading waits out LLM_CHUNK_TIMEOUT, then the fallback answers.
        primary.set_mode("hang")
        for row in run(env, 2):
            assert row["status"] == "succeeded" and row["in_time"]
            assert row["result"]["llm"] == {"endpoint": "backup", "model": "fake-backup"}
            assert llm_reasons(row) == ["llm_timeout", "llm_fallback"]
        hung = primary.calls()
        assert hung == 2

        # Its breaker is open now (threshold 2): no more waiting on it, no more calls to it.
        for row in run(env, 3):
            assert llm_reasons(row) == ["llm_breaker_open", "llm_fallback"]
            assert "primary" not in row["timings"]["llm_calls"]
        assert primary.calls() == hung

        # Healed and reset by the operator: every worker sends traffic to the primary again.
        primary.control(mode="ok", reset=True)
        reset = run_manage(["reset_breakers", "llm"], env)
        assert reset.returncode == 0, reset.stderr
        for row in run(env, 2):
            assert row["result"]["llm"]["endpoint"] == "primary" and llm_reasons(row) == []
        assert primary.calls() == 2

        # Both failing: the offline reader answers and both endpoints are named.
        primary.set_mode("error")
        backup.set_mode("error")
        [row] = run(env, 1)
        assert row["status"] == "succeeded" and "llm" not in row["result"]
        assert llm_reasons(row) == ["llm_error", "llm_error:backup"]
    finally:
        cluster.stop()
    figures_of(env)


def figures_of(env) -> None:
    """The per-endpoint figures and the bypass query run on this profile's database."""
    done = run_manage(["shell", "-c", FIGURES], env)
    assert done.returncode == 0, done.stderr
    out = {line.split("=", 1)[0]: json.loads(line.split("=", 1)[1]) for line in done.stdout.splitlines() if "=" in line}
    figures = {f["endpoint"]: f for f in out["FIGURES"]}
    assert (figures["primary"]["calls"], figures["primary"]["failures"]) == (5, 3)  # 2 hung, 2 ok, 1 error
    assert (figures["backup"]["calls"], figures["backup"]["failures"]) == (6, 1)
    assert out["BYPASSED"] is False  # the primary answered after the fallbacks did
    assert 'fortune_llm_calls_total{endpoint="backup"} 6.0' in out["METRICS"]


def test_failover_on_sqlite(sqlite_env, tmp_path, servers):
    walk_the_ladder(sqlite_env, tmp_path, *servers)


def test_failover_on_postgres_and_redis(scaleout_env, tmp_path, servers):
    walk_the_ladder(scaleout_env, tmp_path, *servers)
