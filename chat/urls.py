from django.urls import path

from chat import views

urlpatterns = [
    path("tasks", views.TaskListView.as_view(), name="task-list"),
    path("tasks/<uuid:task_id>", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<uuid:task_id>/cancel", views.TaskCancelView.as_view(), name="task-cancel"),
    path("conversations", views.ConversationListView.as_view(), name="conversation-list"),
    path("conversations/<int:pk>", views.ConversationDetailView.as_view(), name="conversation-detail"),
    path("metrics", views.MetricsView.as_view(), name="user-metrics"),
]
