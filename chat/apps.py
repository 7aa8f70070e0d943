from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Fortune chat"

    def ready(self) -> None:
        # The Django-Q2 receivers that keep the worker bookkeeping (chat/workers.py).
        from chat import signals  # noqa: F401
