"""The operations dashboard inside the Django admin (/admin/operations/): the same snapshot as
GET /api/v1/monitoring/dashboard, rendered with the admin's look, with links to act on it."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from monitoring.dashboard import snapshot

# Django-Q2's own admin pages (the queue page exists with the ORM broker only).
Q_ADMIN_PAGES = (
    ("Queued tasks (broker)", "admin:django_q_ormq_changelist"),
    ("Successful tasks", "admin:django_q_success_changelist"),
    ("Failed tasks", "admin:django_q_failure_changelist"),
    ("Scheduled tasks", "admin:django_q_schedule_changelist"),
)
OUR_PAGES = (
    ("Fortune tasks", "admin:chat_fortunetask_changelist"),
    ("Circuit breakers", "admin:monitoring_circuitbreaker_changelist"),
    ("Breaker events", "admin:monitoring_breakerevent_changelist"),
)


def _links(pages: tuple[tuple[str, str], ...]) -> list[dict]:
    found = []
    for label, name in pages:
        try:
            found.append({"label": label, "url": reverse(name)})
        except NoReverseMatch:  # not registered in this configuration
            continue
    return found


def _status_rows(tasks: dict) -> list[tuple[str, int, int]]:
    hour, day = tasks["last_1h"]["by_status"], tasks["last_24h"]["by_status"]
    return [(status, hour[status], day[status]) for status in day]


def operations_view(request: HttpRequest) -> HttpResponse:
    snap = snapshot()
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "snapshot": snap,
        "status_rows": _status_rows(snap["tasks"]),
        "q_links": _links(Q_ADMIN_PAGES),
        "our_links": _links(OUR_PAGES),
    }
    return TemplateResponse(request, "monitoring/admin_dashboard.html", context)


operations = admin.site.admin_view(operations_view)
