from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from fortune_project.resilience.breakers import ACTIONS, BreakerUnavailable, UnknownBreaker, all_snapshots, apply_action
from monitoring.models import BreakerEvent, CircuitBreaker

ACTION_LABELS = {"reset": "Reset (close)", "force_open": "Force open", "disable": "Disable"}


def _is_operator(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_staff


@admin.register(BreakerEvent)
class BreakerEventAdmin(admin.ModelAdmin):
    """The transition log: read-only, written by fortune_project.resilience.breakers only."""

    list_display = ("created_at", "name", "from_state", "to_state", "who", "reason")
    list_filter = ("name", "to_state", "from_state", "created_at")
    search_fields = ("reason", "who", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_operator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(admin.ModelAdmin):
    """The live breakers (from the shared cache) with reset / force open / disable buttons."""

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_operator(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_operator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method == "POST":
            return self._act(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Circuit breakers",
            "opts": self.model._meta,
            "breakers": all_snapshots(),
            "actions": ACTION_LABELS,
        }
        return TemplateResponse(request, "admin/monitoring/circuit_breakers.html", context)

    def _act(self, request: HttpRequest) -> HttpResponse:
        name, action = request.POST.get("name", ""), request.POST.get("action", "")
        who = f"{request.user.get_username()} (admin)"
        try:
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}")
            snapshot = apply_action(name, action, who, request.user, request.POST.get("reason", "").strip()[:200])
        except (UnknownBreaker, ValueError, BreakerUnavailable) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Breaker {name} is now {snapshot['state']}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)
