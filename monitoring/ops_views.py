"""Operator views: the staff-only monitoring API, the live page, /health/ and /metrics.

Thin: each renders a function of monitoring.dashboard, monitoring.workers or monitoring.alerts.
"""

from collections.abc import Callable

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from health_check.views import HealthCheckView
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import alerts, dashboard
from monitoring.health_checks import CHECKS, READY_CHECKS
from monitoring.prometheus import metrics_view  # noqa: F401  (re-exported for the URL conf)

# Response shapes for the OpenAPI schema only (the views return plain dicts).
_WORKER = inline_serializer(
    "Worker",
    {
        "pid": serializers.IntegerField(),
        "state": serializers.ChoiceField(["idle", "busy"]),
        "task": serializers.CharField(allow_null=True),
        "busy_since": serializers.DateTimeField(allow_null=True),
    },
)
_POOL = inline_serializer(
    "WorkerPool",
    {
        "max_workers": serializers.IntegerField(),
        "clusters": serializers.ListField(child=serializers.DictField()),
        "workers": serializers.ListField(child=_WORKER),
        "queued": serializers.IntegerField(),
        "running": serializers.IntegerField(),
        "oldest_queued_age_ms": serializers.IntegerField(allow_null=True),
    },
)
_ALERTS = inline_serializer(
    "Alert",
    {
        "code": serializers.CharField(),
        "severity": serializers.ChoiceField(["warning", "critical"]),
        "message": serializers.CharField(),
        "since": serializers.DateTimeField(),
        "subject": serializers.CharField(required=False),
    },
    many=True,
)


class DashboardView(APIView):
    """The whole operations picture in one call."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(dashboard.snapshot())


class WorkerPoolView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=_POOL)
    def get(self, request):
        return Response(dashboard.worker_pool())


class AlertsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=_ALERTS)
    def get(self, request):
        return Response(alerts.current_alerts())


@staff_member_required
@ensure_csrf_cookie  # the page's breaker buttons post to the API with the session and this token
def live_page(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/live.html", {"title": "Fortune Desk — live operations"})


# django-health-check's HTML page carries an inline <style> (no nonce): allow inline styles there
# only. Its view is async and django-csp's decorators wrap sync views, so the decorator is applied
# to a sync stand-in that hands back the awaited response.
_INLINE_STYLES = {"style-src": [UNSAFE_INLINE]}


def _health(checks: list) -> Callable:
    view = HealthCheckView.as_view(checks=checks)

    async def health(request: HttpRequest) -> HttpResponseBase:
        response = await view(request)
        return csp_update(_INLINE_STYLES)(lambda _request: response)(request)

    return health


health_view = _health(CHECKS)
ready_view = _health(READY_CHECKS)
