"""The shape both live sockets share: poll shared state in a background task (the only way to
see other processes' changes without Redis, shared/NOTES.md); with Redis, a group message from
a worker wakes the poll early."""

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.authtoken.models import Token

from chat.live import hints_enabled

log = logging.getLogger(__name__)


def scope_user(scope: dict):
    """The `?token=` key's user if a token is given (a bad one is nobody), else the session's."""
    token = parse_qs(scope.get("query_string", b"").decode()).get("token")
    if token:
        row = Token.objects.select_related("user").filter(key=token[0]).first()
        return row.user if row and row.user.is_active else None
    user = scope.get("user")
    return user if user is not None and user.is_authenticated else None


class PollingConsumer(AsyncJsonWebsocketConsumer):
    async def start_watching(self, group: str) -> None:
        self.wake = asyncio.Event()
        self.hint_group = group
        self.hinted = hints_enabled()
        if self.hinted:
            await self.channel_layer.group_add(group, self.channel_name)
        self.watcher = asyncio.create_task(self.watch())

    async def disconnect(self, code: int) -> None:
        watcher = getattr(self, "watcher", None)
        if watcher is not None:
            watcher.cancel()
        if getattr(self, "hinted", False):
            await self.channel_layer.group_discard(self.hint_group, self.channel_name)

    async def wake_up(self, event: dict) -> None:
        """A hint from a worker (Redis only): poll now."""
        self.wake.set()

    @classmethod
    async def encode_json(cls, content) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)

    async def watch(self) -> None:
        try:
            await self.poll_forever()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", type(self).__name__)
            await self.close(code=1011)

    async def sleep(self, seconds: float) -> None:
        """Until the next poll: `seconds`, or less when a hint arrives."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self.wake.clear()

    async def poll_forever(self) -> None:
        raise NotImplementedError
