from django.urls import path

from chat.consumers import TaskConsumer

websocket_urlpatterns: list = [
    path("ws/async-chat/tasks/<uuid:task_id>/", TaskConsumer.as_asgi()),
]
