from django.urls import path

from chat.consumers import TaskConsumer
from monitoring.live import MonitoringConsumer

websocket_urlpatterns: list = [
    path("ws/async-chat/tasks/<uuid:task_id>/", TaskConsumer.as_asgi()),
    path("ws/monitoring/", MonitoringConsumer.as_asgi()),
]
