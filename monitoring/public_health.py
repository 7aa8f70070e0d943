"""GET /api/v1/async-chat/health: public, fast, from cached state only (no outbound calls).

Mounted by the root URL conf (fortune_project/urls.py) next to the chat API it describes.
"""

import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fortune_project.errors import RETRY_AFTER_503
from fortune_project.resilience.breakers import breaker_states
from monitoring import probes


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

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        body = health_snapshot()
        if body["status"] != "down":
            return Response(body)
        return Response(body, status=503, headers={"Retry-After": RETRY_AFTER_503})
