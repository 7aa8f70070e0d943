from django.urls import path

from chat import views
from monitoring.public_health import PublicHealthView

urlpatterns = [
    path("tasks", views.TaskListView.as_view(), name="task-list"),
    path("tasks/<uuid:task_id>", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<uuid:task_id>/cancel", views.TaskCancelView.as_view(), name="task-cancel"),
    path("conversations", views.ConversationListView.as_view(), name="conversation-list"),
    path("conversations/<int:pk>", views.ConversationDetailView.as_view(), name="conversation-detail"),
    path("health", PublicHealthView.as_view(), name="public-health"),
    path("metrics", views.MetricsView.as_view(), name="user-metrics"),
]
