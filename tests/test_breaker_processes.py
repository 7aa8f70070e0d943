"""Breakers shared by real processes: on the database cache (a SQLite file) and on Redis."""

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from tests.support.breaker_procs import Child, events_since, last_event_id, shared_store, start_children
from tests.support.processes import base_env, run_manage

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/12"
RECOVERY = 1.0  # llm: 2 failures open it for 1 s in the children


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    return shared_store(tmp_path_factory)


def redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({exc}); the Redis variant needs a local server")
    return client


@pytest.fixture(scope="module", params=["database_cache", "redis"])
def fleet(request, store, tmp_path_factory) -> Iterator[tuple[dict[str, str], list[Child]]]:
    """Three children on one backend, shared by the module's tests (each starts in about 2 s)."""
    extra = {"BREAKER_LLM_THRESHOLD": "2", "BREAKER_LLM_RECOVERY": str(RECOVERY), "BREAKER_RAG_THRESHOLD": "40"}
    if request.param == "redis":
        redis_or_skip()
        extra["REDIS_URL"] = REDIS_URL
    env = base_env(store, **extra)
    started = start_children(3, env, tmp_path_factory.mktemp(f"children-{request.param}"))
    yield env, started
    for child in started:
        child.stop()


@pytest.fixture
def prefix(fleet) -> Iterator[str]:
    """A fresh key prefix: this test's breakers share nothing with other tests'."""
    prefix = f"proc-{uuid4().hex[:8]}"
    yield prefix
    if "REDIS_URL" in fleet[0]:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)


@pytest.fixture
def env(fleet, prefix) -> dict[str, str]:
    return {**fleet[0], "BREAKER_KEY_PREFIX": prefix}


@pytest.fixture
def children(fleet, prefix) -> list[Child]:
    for child in fleet[1]:
        child.prefix = prefix
    return fleet[1]


def trip(child: Child) -> None:
    child.ask("call", "llm", "fail")
    assert child.ask("call", "llm", "fail") == {"outcome": "failed", "state": "open"}


def storm(children: list[Child], name: str, mode: str, sleep: float, log: Path) -> list[dict]:
    """Ten threads in each child call at the same wall-clock instant."""
    at = time.time() + 0.5
    for child in children:
        child.send("storm", name, 10, f"{at:.3f}", sleep, mode, log)
    return [child.receive(timeout=60) for child in children]


def test_a_breaker_opened_in_one_process_is_seen_open_by_another_at_its_next_call(children):
    a, b, _ = children
    assert b.ask("call", "llm", "ok")["outcome"] == "ran"

    trip(a)

    assert b.ask("call", "llm", "ok") == {"outcome": "rejected", "state": "open"}


@pytest.mark.parametrize(("probe", "after"), [("ok", "closed"), ("fail", "open")])
def test_after_the_recovery_timeout_thirty_callers_in_three_processes_make_exactly_one_probe(
    children, store, tmp_path, probe, after
):
    calls = tmp_path / "calls.log"
    calls.touch()
    first_event = last_event_id(store)
    trip(children[0])
    time.sleep(RECOVERY + 0.1)

    results = storm(children, "llm", probe, 1.5, calls)

    assert len(calls.read_text().splitlines()) == 1
    assert sum(r["ran"] + r["failed"] for r in results) == 1
    assert sum(r["rejected"] for r in results) == 29
    assert children[1].ask("state", "llm")["state"] == after
    transitions = [(old, new) for old, new, _ in events_since(store, first_event, "llm")]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", after)]


def test_a_failed_probe_reopens_it_for_a_fresh_timeout_in_every_process(children):
    a, b, c = children
    trip(a)
    time.sleep(RECOVERY + 0.1)

    assert a.ask("call", "llm", "fail") == {"outcome": "failed", "state": "open"}

    assert b.ask("call", "llm", "ok")["outcome"] == "rejected"
    retry_at = c.ask("snapshot", "llm")["retry_at"]
    assert retry_at > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def test_a_reset_from_another_process_is_seen_by_every_process_at_its_next_call(children, env, store):
    first_event = last_event_id(store)
    trip(children[0])
    assert [c.ask("call", "llm", "ok")["outcome"] for c in children] == ["rejected"] * 3

    done = run_manage(["reset_breakers", "llm"], env)

    assert done.returncode == 0, done.stderr
    assert "closed" in done.stdout
    assert [c.ask("call", "llm", "ok") for c in children] == [{"outcome": "ran", "state": "closed"}] * 3
    assert events_since(store, first_event, "llm")[-1][1:] == ("closed", f"manage.py ({_unix_user()})")


def test_thirty_concurrent_failures_in_three_processes_are_all_counted(children, tmp_path):
    results = storm(children, "rag", "fail", 0, tmp_path / "calls.log")

    assert sum(r["failed"] for r in results) == 30
    snapshot = children[0].ask("snapshot", "rag")
    assert (snapshot["state"], snapshot["failures"]) == ("closed", 30)


def _unix_user() -> str:
    from monitoring.management.commands.reset_breakers import command_actor

    return command_actor().removeprefix("manage.py (").removesuffix(")")
