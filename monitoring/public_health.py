"""GET /api/v1/async-chat/health: public, fast, from cached state only (no outbound calls)."""

import time

from django.core.cache import cache
from django.db import connection
from django_q.status import Stat
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from fortune_project.errors import RETRY_AFTER_503
from monitoring.breakers import breaker_states


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"status": "ok", "detail": connection.vendor}
    except Exception as exc:
        return {"status": "down", "detail": type(exc).__name__}


def _cache() -> dict:
    try:
        cache.get("health:probe")
        return {"status": "ok", "detail": type(cache).__name__}
    except Exception as exc:
        return {"status": "down", "detail": type(exc).__name__}


def _workers() -> dict:
    try:
        clusters = Stat.get_all()
    except Exception as exc:
        return {"status": "degraded", "detail": f"cluster state unreadable: {type(exc).__name__}"}
    workers = sum(len(c.workers) for c in clusters)
    if not workers:
        return {"status": "degraded", "detail": "no live task cluster"}
    return {"status": "ok", "detail": f"{len(clusters)} cluster(s), {workers} worker(s)"}


def _from_breakers(states: dict[str, str], *names: str) -> dict:
    bad = [f"{n} breaker {states[n]}" for n in names if states.get(n) in ("open", "forced_open")]
    return {"status": "degraded", "detail": ", ".join(bad)} if bad else {"status": "ok", "detail": "breakers closed"}


def health_snapshot() -> dict:
    started = time.monotonic()
    components = {"database": _database(), "cache": _cache()}
    states = breaker_states() if components["cache"]["status"] == "ok" else {}
    components["workers"] = (
        _workers() if components["cache"]["status"] == "ok" else {"status": "degraded", "detail": "cache down"}
    )
    components["rag"] = _from_breakers(states, "rag", "chromadb")
    components["llm"] = _from_breakers(states, "llm")
    statuses = {c["status"] for c in components.values()}
    overall = "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"
    return {
        "status": overall,
        "components": components,
        "breakers": states,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }


class PublicHealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def get(self, request):
        body = health_snapshot()
        if body["status"] != "down":
            return Response(body)
        return Response(body, status=503, headers={"Retry-After": RETRY_AFTER_503})
