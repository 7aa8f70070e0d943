from django.urls import reverse
from rest_framework import serializers

from chat.models import Conversation, FortuneTask, Message
from fortune_project.fields import (
    StrictCharField,
    StrictChoiceField,
    StrictPrimaryKeyRelatedField,
    StrictSlugRelatedField,
)
from rag.models import LANGUAGES, Poem, Temple


class SubmitSerializer(serializers.Serializer):
    question = StrictCharField(min_length=1, max_length=2000, trim_whitespace=True)
    temple = StrictSlugRelatedField(slug_field="slug", queryset=Temple.objects.all(), required=False)
    language = StrictChoiceField(choices=[code for code, _ in LANGUAGES], default="en")
    conversation = StrictPrimaryKeyRelatedField(queryset=Conversation.objects.none(), required=False)
    poem = StrictPrimaryKeyRelatedField(queryset=Poem.objects.select_related("temple"), required=False)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the caller's own conversations exist, as far as they can tell.
        self.fields["conversation"].queryset = Conversation.objects.filter(user=user)

    def validate(self, attrs):
        temple, poem = attrs.get("temple"), attrs.get("poem")
        if temple and poem and poem.temple_id != temple.id:
            raise serializers.ValidationError({"poem": ["This poem is not from that temple."]})
        return attrs


def websocket_path(task: FortuneTask) -> str:
    return f"/ws/async-chat/tasks/{task.id}/"


class TaskSerializer(serializers.ModelSerializer):
    conversation: serializers.PrimaryKeyRelatedField[Conversation] = serializers.PrimaryKeyRelatedField(read_only=True)
    timings = serializers.SerializerMethodField()
    partial_text = serializers.CharField(read_only=True)
    # How many times a worker was set on it: more than 1 after a rescue (chat/rescue.py).
    attempts = serializers.IntegerField(source="attempt", read_only=True)

    class Meta:
        model = FortuneTask
        fields = [
            "id",
            "status",
            "stage",
            "question",
            "conversation",
            "submitted_at",
            "started_at",
            "finished_at",
            "deadline",
            "result",
            "error",
            "timings",
            "partial_text",
            "attempts",
        ]

    def get_timings(self, task: FortuneTask) -> dict:
        keys = ("queue_ms", "rag_ms", "llm_ms", "total_ms")
        return {k: (task.timings or {}).get(k) for k in keys}


class SubmittedSerializer(TaskSerializer):
    links = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = ["id", "status", "conversation", "submitted_at", "deadline", "links"]

    def get_links(self, task: FortuneTask) -> dict:
        request = self.context["request"]
        return {
            "self": request.build_absolute_uri(reverse("task-detail", args=[task.id])),
            "websocket": websocket_path(task),
        }


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["role", "content", "task", "created_at"]


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at"]


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = ConversationSerializer.Meta.fields + ["messages"]
