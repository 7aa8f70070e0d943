"""The chat app's API: thin views over chat.submission, chat.lifecycle and chat.metrics."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.utils import timezone
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from chat import lifecycle
from chat.metrics import user_metrics
from chat.models import Conversation, FortuneTask, Status
from chat.serializers import (
    ConversationDetailSerializer,
    ConversationSerializer,
    SubmitSerializer,
    SubmittedSerializer,
    TaskSerializer,
)
from chat.submission import QUEUE_ERROR, Question, submit_question
from fortune_project.errors import Conflict, ServiceUnavailable


class SubmitThrottle(UserRateThrottle):
    scope = "submit"


class _Credentials(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def post(self, request):
        creds = _Credentials(data=request.data)
        creds.is_valid(raise_exception=True)
        user = authenticate(request, **creds.validated_data)
        if user is None:
            raise serializers.ValidationError({"non_field_errors": ["Unable to log in with these credentials."]})
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


def _own_task(request, task_id) -> FortuneTask:
    """The caller's task; another user's is as absent as a missing one (404, never 403)."""
    task = generics.get_object_or_404(FortuneTask.objects.filter(user=request.user), id=task_id)
    if not task.is_terminal and timezone.now() > task.deadline + timedelta(seconds=settings.TASK_GRACE):
        lifecycle.expire_task(task.id)  # nobody may see a task stuck past its deadline
        task.refresh_from_db()
    return task


class TaskListView(generics.ListAPIView):
    serializer_class = TaskSerializer

    def get_throttles(self):
        return [SubmitThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        tasks = FortuneTask.objects.filter(user=self.request.user)
        lifecycle.expire_overdue(tasks=tasks)  # as in _own_task: no list shows a task stuck past its deadline
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Status.values:
                raise serializers.ValidationError({"status": [f"Must be one of {', '.join(Status.values)}."]})
            tasks = tasks.filter(status=wanted)
        return tasks.order_by("-submitted_at")

    def post(self, request):
        form = SubmitSerializer(data=request.data, user=request.user)
        form.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()[:200] or None
        task, created = submit_question(
            request.user,
            Question(
                text=form.validated_data["question"],
                **{k: v for k, v in form.validated_data.items() if k != "question"},
            ),
            idempotency_key=key,
        )
        if created:
            # Only the enqueue failure counts here: a fast worker may already have moved the task.
            task.refresh_from_db(fields=["error"])
            if task.error == QUEUE_ERROR:
                raise ServiceUnavailable("The task queue is unavailable; try again shortly.", "queue_unavailable")
        body = SubmittedSerializer(task, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class TaskDetailView(APIView):
    def get(self, request, task_id):
        return Response(TaskSerializer(_own_task(request, task_id)).data)


class TaskCancelView(APIView):
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
    def get(self, request):
        return Response(user_metrics(request.user))
