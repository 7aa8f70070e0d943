"""GET /api/v1/async-chat/health: public, fast, from cached state only (no outbound calls).

The answer is a per-process snapshot: a background refresher (monitoring.refresher, one daemon
thread per web process, started by the first request) probes the database, the cache, the task
cluster and the breakers every HEALTH_SNAPSHOT_INTERVAL seconds, and a request only reads that
snapshot from memory. So the answer never waits on the database's write lock, the cache or a
busy server, whatever the clients are doing; its `age_ms` says how old it is. A snapshot older
than STALE_INTERVALS intervals (its refresher stuck or failing) is not passed off as current:
every component is reported at least degraded, and past DOWN_AFTER seconds the answer is down.
HEALTH_SNAPSHOT_INTERVAL=0 turns the snapshot off: each request probes (the test suite does).

Mounted by the root URL conf (fortune_project/urls.py) next to the chat API it describes.
"""

import functools
import json
import time
from collections.abc import Awaitable, Callable

from csp.utils import build_policy
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fortune_project.errors import RETRY_AFTER_503
from fortune_project.resilience.breakers import breaker_states
from monitoring import probes
from monitoring.refresher import Refresher, Snapshot

STALE_INTERVALS = 3  # a snapshot this many intervals old (and at least STALE_MIN s) is stale
STALE_MIN = 3.0
DOWN_AFTER = 30.0  # seconds without a fresh snapshot before the answer is down
FIRST_WAIT = 5.0  # seconds a request waits for the process's first snapshot


def health_snapshot() -> dict:
    started = time.monotonic()
    components = {"database": probes.database().as_dict(), "cache": probes.cache().as_dict()}
    cache_ok = components["cache"]["status"] == probes.OK
    states = breaker_states() if cache_ok else {}
    cluster = probes.cluster() if cache_ok else probes.Probe(probes.DOWN, "cache down")
    # Workers missing delay answers but do not stop the API: degraded, never down, here.
    components["workers"] = {
        "status": probes.OK if cluster.status == probes.OK else probes.DEGRADED,
        "detail": cluster.detail,
    }
    components["rag"] = probes.breakers("rag", "chromadb", states=states).as_dict()
    components["llm"] = probes.breakers("llm", states=states).as_dict()
    return {
        "status": overall(components),
        "components": components,
        "breakers": states,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }


def overall(components: dict[str, dict]) -> str:
    statuses = {c["status"] for c in components.values()}
    return "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"


def interval() -> float:
    return float(settings.HEALTH_SNAPSHOT_INTERVAL)


snapshots: Refresher[dict] = Refresher("public-health-snapshot", health_snapshot, interval)


def as_served(snapshot: Snapshot[dict] | None, now: float | None = None) -> dict:
    """The body for a snapshot of this age: as built while fresh, then honestly worse."""
    if snapshot is None:
        detail = "no health snapshot yet"
        components = {name: {"status": "down", "detail": detail} for name in probes_named()}
        return {"status": "down", "components": components, "breakers": {}, "age_ms": None}
    age = snapshot.age(now)
    body = dict(snapshot.value, age_ms=int(age * 1000))
    if age <= max(STALE_INTERVALS * interval(), STALE_MIN):
        return body
    worst = "down" if age > DOWN_AFTER else "degraded"
    note = f"health snapshot {age:.0f} s old"
    body["components"] = {
        name: {
            "status": "down" if "down" in (c["status"], worst) else "degraded",
            "detail": f"{c['detail']} ({note})",
        }
        for name, c in snapshot.value["components"].items()
    }
    body["status"] = overall(body["components"])
    return body


def probes_named() -> tuple[str, ...]:
    return ("database", "cache", "workers", "rag", "llm")


def current() -> dict:
    if interval() <= 0:
        return dict(health_snapshot(), age_ms=0)
    return as_served(snapshots.latest(wait=FIRST_WAIT))


class PublicHealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        body = current()
        if body["status"] != "down":
            return Response(body)
        return Response(body, status=503, headers={"Retry-After": RETRY_AFTER_503})


# --- Serving it on the event loop ---------------------------------------------------------------
# Under ASGI, Django runs each request's sync middleware in a thread of its own: behind a burst
# of requests that thread waits for the GIL and the threads before it, so even a memory read
# took half a second. `asgi()` answers GET/HEAD on this path on the event loop itself, with the
# headers Django's middleware would add; anything else (no snapshot yet, a host Django would
# refuse, an http request under SECURE_SSL_REDIRECT) goes through Django as before.

PATH = "/api/v1/async-chat/health"
ASGIApp = Callable[..., Awaitable[None]]


def asgi(app: ASGIApp) -> ASGIApp:
    async def health_first(scope: dict, receive: Callable, send: Callable) -> None:
        body = _from_memory(scope)
        if body is None:
            await app(scope, receive, send)
            return
        down = body["status"] == "down"
        raw = json.dumps(body).encode()
        headers = [*_headers(), (b"content-length", str(len(raw)).encode())]
        if down:
            headers.append((b"retry-after", RETRY_AFTER_503.encode()))
        await send({"type": "http.response.start", "status": 503 if down else 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else raw})

    return health_first


def _from_memory(scope: dict) -> dict | None:
    """The body to serve here, or None to leave the request to Django."""
    if scope["type"] != "http" or scope["path"] != PATH or scope["method"] not in ("GET", "HEAD"):
        return None
    if interval() <= 0 or (settings.SECURE_SSL_REDIRECT and scope.get("scheme", "http") != "https"):
        return None
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    snapshot = snapshots.latest()
    return None if snapshot is None else as_served(snapshot)


@functools.cache
def _headers() -> list[tuple[bytes, bytes]]:
    """What the middleware adds to this view's answer (tests/test_public_health.py compares)."""
    headers = {
        "Content-Type": "application/json",
        "Allow": "GET, HEAD, OPTIONS",
        "X-Frame-Options": settings.X_FRAME_OPTIONS,
        "Content-Security-Policy": build_policy(config=settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]),
        "X-Content-Type-Options": "nosniff" if settings.SECURE_CONTENT_TYPE_NOSNIFF else "",
        "Referrer-Policy": settings.SECURE_REFERRER_POLICY or "",
        "Cross-Origin-Opener-Policy": settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "",
    }
    return [(k.lower().encode(), v.encode()) for k, v in headers.items() if v]
