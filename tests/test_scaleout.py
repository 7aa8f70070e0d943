"""The scale-out profile: the same code on PostgreSQL, the Redis broker and the Redis cache."""

import pytest
import redis

from tests.support import cluster as c
from tests.support.processes import base_env, manage, wait_until
from tests.support.services import require_redis, scratch_postgres

pytestmark = pytest.mark.slow
STATUS = "SELECT id::text, status, deliveries FROM chat_fortunetask"


@pytest.fixture
def env(tmp_path):
    redis_url = require_redis(db=11)
    redis.Redis.from_url(redis_url).flushdb()
    with scratch_postgres() as database_url:
        env = base_env(tmp_path, DATABASE_URL=database_url, REDIS_URL=redis_url, TASK_TIMEOUT="20", TASK_GRACE="1")
        c.prepare(env, tmp_path)
        yield env
    redis.Redis.from_url(redis_url).flushdb()


def rows(env) -> dict[str, tuple[str, int]]:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(STATUS)}


def test_nine_tasks_succeed_on_postgres_and_redis(env, tmp_path):
    cluster = c.start_cluster(env, tmp_path)
    try:
        ids = c.submit(env, 9)
        wait_until(lambda: all(rows(env)[i][0] == "succeeded" for i in ids), 60, what="9 tasks on PostgreSQL")
        assert [rows(env)[i][1] for i in ids] == [1] * 9
    finally:
        cluster.stop()


def test_a_task_lost_with_its_redis_cluster_is_ended_by_the_sweeper(env, tmp_path):
    # No cluster runs: the Redis broker holds the task, nobody takes it; the row still ends.
    env = env | {"TASK_TIMEOUT": "2", "SWEEP_INTERVAL": "0.3"}
    [task_id] = c.submit(env, 1)
    sweeper = manage(["sweep_tasks", "--loop"], env, tmp_path / "sweeper.log")
    try:
        wait_until(lambda: rows(env)[task_id][0] == "timed_out", 15, what="the sweeper on PostgreSQL")
    finally:
        sweeper.stop()
