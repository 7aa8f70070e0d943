from django.urls import path, re_path

from chat.consumers import TaskConsumer
from chat.sockets import NoSuchSocket
from monitoring.live import MonitoringConsumer

websocket_urlpatterns: list = [
    # <str:…>, not <uuid:…>: a malformed id must reach the consumer and close 4404, not miss every route
    path("ws/async-chat/tasks/<str:task_id>/", TaskConsumer.as_asgi()),
    path("ws/monitoring/", MonitoringConsumer.as_asgi()),
    # Last: any other path closes 4404 (an unmatched path makes URLRouter raise, which the server answers with a 500)
    re_path(r"^", NoSuchSocket.as_asgi()),
]
