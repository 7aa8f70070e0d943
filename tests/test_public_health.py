import asyncio
import json
import threading
import time

import pytest
from rest_framework.test import APIClient

from monitoring import public_health
from monitoring.probes import Probe
from monitoring.refresher import Refresher, Snapshot
from tests.support.processes import wait_until

URL = "/api/v1/async-chat/health"


def test_it_is_public_and_reports_every_component(db):
    response = APIClient().get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body["components"]) == {"database", "cache", "workers", "rag", "llm"}
    assert set(body["breakers"]) == {"rag", "llm", "chromadb"}


def test_it_is_degraded_without_a_live_cluster(db):
    body = APIClient().get(URL).json()
    assert body["status"] == "degraded"
    assert body["components"]["workers"]["status"] == "degraded"


def test_it_answers_503_down_when_the_database_fails(db, monkeypatch):
    monkeypatch.setattr("monitoring.probes.database", lambda: Probe("down", "OperationalError"))
    response = APIClient().get(URL)
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert int(response["Retry-After"]) > 0


# --- the per-process snapshot (HEALTH_SNAPSHOT_INTERVAL > 0, as in production) ----------------


def _ok_body() -> dict:
    components = {name: {"status": "ok", "detail": "fine"} for name in public_health.probes_named()}
    return {"status": "ok", "components": components, "breakers": {}, "elapsed_ms": 1}


@pytest.fixture
def snapshot_mode(settings, monkeypatch):
    """Production's mode, with a refresher of the test's own: `builds` says what each build does."""
    settings.HEALTH_SNAPSHOT_INTERVAL = 0.05
    builds: list = []

    def build() -> dict:
        step = builds.pop(0) if builds else _ok_body
        return step()

    refresher = Refresher("test-health", build, public_health.interval)
    monkeypatch.setattr(public_health, "snapshots", refresher)
    yield builds
    refresher.stop()


def test_a_request_reads_the_snapshot_and_never_probes_itself(db, snapshot_mode, monkeypatch):
    def hung() -> Probe:
        time.sleep(5)
        return Probe("ok", "late")

    monkeypatch.setattr("monitoring.probes.database", hung)
    started = time.monotonic()
    response = APIClient().get(URL)
    assert time.monotonic() - started < 0.5
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["age_ms"] < 3000


def test_the_refresher_keeps_going_after_a_failing_build(snapshot_mode):
    def boom() -> dict:
        raise RuntimeError("database exploded")

    snapshot_mode.extend([boom, boom])
    snapshot = public_health.snapshots.latest(wait=5)
    assert snapshot is not None and snapshot.value["status"] == "ok"  # built after two failures
    first = snapshot.built_at
    wait_until(lambda: public_health.snapshots.latest().built_at > first, 5, what="a later snapshot")


def test_a_dead_refresher_thread_is_started_again(snapshot_mode):
    public_health.snapshots.latest(wait=5)
    public_health.snapshots.stop()
    assert public_health.snapshots.latest() is not None
    first = public_health.snapshots.latest().built_at
    wait_until(lambda: public_health.snapshots.latest().built_at > first, 5, what="a new refresher")


def test_a_stale_snapshot_answers_degraded_then_down(settings):
    settings.HEALTH_SNAPSHOT_INTERVAL = 1
    now = time.monotonic()
    fresh = public_health.as_served(Snapshot(_ok_body(), now - 1), now)
    assert fresh["status"] == "ok" and fresh["age_ms"] == 1000
    stale = public_health.as_served(Snapshot(_ok_body(), now - 10), now)
    assert stale["status"] == "degraded"
    assert all(c["status"] == "degraded" and "10 s old" in c["detail"] for c in stale["components"].values())
    dead = public_health.as_served(Snapshot(_ok_body(), now - 60), now)
    assert dead["status"] == "down"


def test_a_refresher_stuck_in_its_build_is_reported_down_not_ok(db, snapshot_mode, monkeypatch):
    release = threading.Event()
    snapshot_mode.extend([_ok_body, lambda: release.wait(30) and _ok_body()])
    public_health.snapshots.latest(wait=5)
    monkeypatch.setattr(public_health, "DOWN_AFTER", 0.3)
    monkeypatch.setattr(public_health, "STALE_MIN", 0.1)
    time.sleep(0.5)
    response = APIClient().get(URL)
    release.set()
    assert response.status_code == 503
    assert response.json()["status"] == "down"


def test_before_its_first_snapshot_a_process_waits_for_one_then_says_down(snapshot_mode, monkeypatch):
    monkeypatch.setattr(public_health, "FIRST_WAIT", 0.2)
    release = threading.Event()
    snapshot_mode.append(lambda: release.wait(30) and _ok_body())
    body = public_health.current()
    release.set()
    assert body["status"] == "down" and body["age_ms"] is None


# --- served on the event loop (fortune_project/asgi.py) -----------------------------------------


def _asgi_get(method: str = "GET", host: bytes = b"testserver", path: str = URL) -> tuple[int, dict, bytes]:
    """One request through public_health.asgi() in front of an app that answers 418."""
    sent: list[dict] = []

    async def django(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "scheme": "http", "headers": [(b"host", host)]}
    asyncio.run(public_health.asgi(django)(scope, None, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, sent[1]["body"]


def _directives(policy: str) -> set[str]:
    return {part.strip() for part in policy.split(";")}


def test_the_event_loop_answers_from_the_snapshot_with_the_views_headers(db, snapshot_mode):
    public_health.snapshots.latest(wait=5)
    status, headers, raw = _asgi_get()
    assert status == 200 and json.loads(raw)["status"] == "ok"
    view = APIClient().get(URL)  # the same answer through Django (each request probes in tests)
    assert set(headers) == {k.lower() for k in view.headers} - {"retry-after"}
    assert _directives(headers["content-security-policy"]) == _directives(view["Content-Security-Policy"])
    assert _asgi_get("HEAD")[2] == b""


def test_a_down_snapshot_answers_503_with_retry_after_on_the_loop_too(snapshot_mode, monkeypatch):
    public_health.snapshots.latest(wait=5)
    monkeypatch.setattr(public_health, "DOWN_AFTER", 0.0)
    monkeypatch.setattr(public_health, "STALE_MIN", 0.0)
    monkeypatch.setattr(public_health, "STALE_INTERVALS", 0)
    status, headers, raw = _asgi_get()
    assert status == 503 and int(headers["retry-after"]) > 0 and json.loads(raw)["status"] == "down"


def test_anything_else_goes_to_django(snapshot_mode):
    public_health.snapshots.latest(wait=5)
    assert _asgi_get("POST")[0] == 418
    assert _asgi_get(path="/api/v1/async-chat/tasks")[0] == 418
    assert _asgi_get(host=b"evil.example")[0] == 418  # Django refuses the host, as for any path
