"""Operator API for the circuit breakers: thin views over fortune_project.resilience.breakers.apply_action."""

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from fortune_project.errors import ServiceUnavailable
from fortune_project.resilience.breakers import BreakerUnavailable, UnknownBreaker, all_snapshots, apply_action
from monitoring.serializers import BreakerActionSerializer, BreakerSerializer


class BreakerListView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=BreakerSerializer(many=True))
    def get(self, request):
        return Response(all_snapshots())


class BreakerActionView(APIView):
    """POST reset / force-open / disable: 200 with the breaker's new snapshot; who and when are recorded."""

    permission_classes = [IsAdminUser]
    breaker_action: str = "reset"

    @extend_schema(request=BreakerActionSerializer, responses=BreakerSerializer)
    def post(self, request, name: str):
        body = BreakerActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        who = f"{request.user.get_username()} (api)"
        try:
            snapshot = apply_action(name, self.breaker_action, who, request.user, body.validated_data.get("reason", ""))
        except UnknownBreaker as exc:
            raise NotFound(str(exc))
        except BreakerUnavailable as exc:
            raise ServiceUnavailable(str(exc), "breaker_unavailable")
        return Response(snapshot)
