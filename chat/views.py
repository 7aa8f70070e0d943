"""The chat app's API: thin views over chat.submission, chat.lifecycle and chat.metrics."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, user_logged_in
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from chat import lifecycle, login_guard
from chat.auth import BearerTokenAuthentication, issue_token, revoke_all_tokens, revoke_token
from chat.metrics import user_metrics
from chat.models import Conversation, FortuneTask, Status
from chat.serializers import (
    ConversationDetailSerializer,
    ConversationSerializer,
    SubmitSerializer,
    SubmittedSerializer,
    TaskSerializer,
)
from chat.submission import Question, idempotency_key, submit_question
from fortune_project.errors import Conflict
from fortune_project.fields import StrictCharField
from fortune_project.timefmt import iso


class SubmitThrottle(UserRateThrottle):
    scope = "submit"


class _Credentials(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)


class TokenView(APIView):
    """POST signs in (a new token; login-throttled by chat.login_guard); DELETE revokes the token used."""

    authentication_classes = [BearerTokenAuthentication]  # DELETE: the token to revoke, never a session

    def get_authenticators(self):
        # Signing in ignores any token sent along, so a stale one never blocks getting a new one.
        signing_in = getattr(self.request, "method", None) == "POST"  # no request yet in schema generation
        return [] if signing_in else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(
        request=_Credentials,
        responses=inline_serializer(
            "IssuedToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
        ),
    )
    def post(self, request):
        creds = _Credentials(data=request.data)
        creds.is_valid(raise_exception=True)
        user = authenticate(request, **creds.validated_data)  # axes needs the request
        if user is None:
            if getattr(request, "axes_locked_out", False):
                raise login_guard.TooManyLoginAttempts()
            raise serializers.ValidationError({"non_field_errors": ["Unable to log in with these credentials."]})
        user_logged_in.send(sender=type(user), request=request, user=user)  # last_login; axes resets failures
        token, expiry = issue_token(user)
        return Response({"token": token, "expiry": iso(expiry)})

    @extend_schema(responses={204: None})
    def delete(self, request):
        revoke_token(request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevokeAllTokensView(APIView):
    """POST /api/v1/auth/token/revoke-all: sign out every client holding one of the caller's tokens."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=inline_serializer("RevokedTokens", {"revoked": serializers.IntegerField()}))
    def post(self, request):
        return Response({"revoked": revoke_all_tokens(request.user)})


def _own_task(request, task_id) -> FortuneTask:
    """The caller's task; another user's is as absent as a missing one (404, never 403)."""
    task = generics.get_object_or_404(FortuneTask.objects.filter(user=request.user), id=task_id)
    if not task.is_terminal and timezone.now() > task.deadline + timedelta(seconds=settings.TASK_GRACE):
        lifecycle.expire_task(task.id)  # nobody may see a task stuck past its deadline
        task.refresh_from_db()
    return task


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 200},
    OpenApiParameter.HEADER,
    description="The same key with the same body within the idempotency window names the same task.",
)


@extend_schema_view(
    get=extend_schema(parameters=[OpenApiParameter("status", str, enum=Status.values)]),
    post=extend_schema(
        request=SubmitSerializer, responses={202: SubmittedSerializer}, parameters=[IDEMPOTENCY_HEADER]
    ),
)
class TaskListView(generics.ListAPIView):
    serializer_class = TaskSerializer

    def get_throttles(self):
        return [SubmitThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        tasks = FortuneTask.objects.filter(user=self.request.user)
        lifecycle.expire_overdue(tasks=tasks)  # as in _own_task: no list shows a task stuck past its deadline
        wanted = self.request.query_params.get("status")
        if wanted is not None:  # an empty ?status= is a mistake, not "any"
            if wanted not in Status.values:
                raise serializers.ValidationError({"status": [f"Must be one of {', '.join(Status.values)}."]})
            tasks = tasks.filter(status=wanted)
        return tasks.order_by("-submitted_at")

    def post(self, request):
        key = idempotency_key(request.headers.get("Idempotency-Key"))
        form = SubmitSerializer(data=request.data, user=request.user)
        form.is_valid(raise_exception=True)
        task, _ = submit_question(
            request.user,
            Question(
                text=form.validated_data["question"],
                **{k: v for k, v in form.validated_data.items() if k != "question"},
            ),
            idempotency_key=key,
            per_user_cap=True,
        )
        body = SubmittedSerializer(task, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class TaskDetailView(APIView):
    @extend_schema(responses=TaskSerializer)
    def get(self, request, task_id):
        return Response(TaskSerializer(_own_task(request, task_id)).data)


class TaskCancelView(APIView):
    @extend_schema(request=None, responses=TaskSerializer)
    def post(self, request, task_id):
        task = _own_task(request, task_id)
        if not lifecycle.cancel_task(task.id):
            raise Conflict("The task has already finished.", "task_finished")
        task.refresh_from_db()
        return Response(TaskSerializer(task).data)


class ConversationListView(generics.ListAPIView):
    serializer_class = ConversationSerializer

    def get_queryset(self):
        return Conversation.objects.filter(user=self.request.user)


class ConversationDetailView(generics.RetrieveAPIView):
    serializer_class = ConversationDetailSerializer

    def get_queryset(self):
        return Conversation.objects.filter(user=self.request.user).prefetch_related("messages")


class MetricsView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(user_metrics(request.user))
