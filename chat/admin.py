"""Admin for conversations and fortune tasks.

Tasks are read-only here: their status only moves through chat.lifecycle's conditional updates,
so the admin's actions call the same functions as the API (cancel_task, submit_question).
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from chat.lifecycle import cancel_task
from chat.models import Conversation, FortuneTask, Message
from chat.rescue import LOST_FILTER, rescue_totals
from chat.submission import Question, submit_question
from fortune_project.errors import ServiceUnavailable


class RescuedFilter(admin.SimpleListFilter):
    """Tasks a rescue re-ran (their worker or cluster died) and tasks it had to end `worker_lost`;
    the choices show how many (chat/rescue.py)."""

    title = "rescue"
    parameter_name = "rescue"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        totals = rescue_totals()
        rescued = FortuneTask.objects.filter(attempt__gt=1).count()
        return [
            ("rescued", f"Rescued ({rescued} tasks, {totals['rescues']} rescues)"),
            ("lost", f"Worker lost ({totals['worker_lost']})"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "rescued":
            return queryset.filter(attempt__gt=1)
        if self.value() == "lost":
            return queryset.filter(LOST_FILTER)
        return queryset


@admin.register(FortuneTask)
class FortuneTaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "stage",
        "user",
        "temple",
        "degraded",
        "submitted_at",
        "total_ms",
        "attempt",
        "worker_pid",
    )
    list_filter = ("status", "stage", "degraded", RescuedFilter, "temple")
    search_fields = ("question", "id", "user__username")
    list_select_related = ("user", "temple")
    date_hierarchy = "submitted_at"
    ordering = ("-submitted_at",)
    actions = ("cancel_tasks", "rerun_tasks")
    fieldsets = (
        (None, {"fields": ("id", "user", "conversation", "question", "temple", "poem", "language")}),
        ("Progress", {"fields": ("status", "stage", "submitted_at", "started_at", "finished_at", "deadline")}),
        ("Outcome", {"fields": ("degraded", "total_ms", "timings", "result", "error", "partial_text")}),
        (
            "Delivery",
            {"fields": ("attempt", "rescued_at", "worker_host", "worker_pid", "deliveries", "idempotency_key")},
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks are created by submitting a question

    @admin.action(description="Cancel selected tasks", permissions=["change"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("id", flat=True))
        cancelled = sum(cancel_task(task_id) for task_id in ids)
        self.message_user(request, f"Cancelled {cancelled} task(s); {len(ids) - cancelled} had already ended.")

    @admin.action(description="Re-run selected tasks as new tasks", permissions=["change"])
    def rerun_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        created = 0
        for task in queryset.select_related("user", "temple", "poem", "conversation"):
            try:
                submit_question(task.user, _question_of(task))
            except ServiceUnavailable as exc:
                self.message_user(request, f"Stopped after {created} new task(s): {exc.detail}", messages.ERROR)
                return
            created += 1
        self.message_user(request, f"Submitted {created} new task(s).", messages.SUCCESS)


def _question_of(task: FortuneTask) -> Question:
    """The same question, asked again in the same conversation by the same user."""
    return Question(
        text=task.question, language=task.language, temple=task.temple, poem=task.poem, conversation=task.conversation
    )


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "content", "task")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("user",)
    inlines = (MessageInline,)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "created_at", "task")
    list_filter = ("role",)
    search_fields = ("content", "conversation__title")
    raw_id_fields = ("conversation", "task")
    readonly_fields = ("created_at",)
