"""What every WebSocket here shares: clients cannot crash one, leave work running, or open
without limit (issue 11).

- Clients have nothing to say on these sockets. Any frame (text, binary, JSON or not) closes the
  socket with 1003, logged in one line; Channels' JSON decoding used to raise instead, which
  closed it with 1011 and never ran `disconnect()`.
- Whatever a socket holds (its place in a feed, its slot under the per-user cap) is recorded
  with `hold()` and given back in `__call__`'s `finally`, which every ending passes through:
  the client's close, our own close, an exception anywhere, the server cancelling it.
- A socket's updates come from a shared feed (chat/fanout.py), so the socket itself runs
  nothing in the background and needs no channel of its own.
- A user may hold `WS_MAX_SOCKETS_PER_USER` sockets at once in one web process; one more closes
  with 4429.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from chat.fanout import Feed, hub

log = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
NOT_FOUND = 4404
TOO_MANY_SOCKETS = 4429
UNSUPPORTED_FRAME = 1003
INTERNAL_ERROR = 1011
# Not a configured alias, so get_channel_layer() gives None and Channels opens no channel per
# socket: the feeds listen for hints on the sockets' behalf.
NO_CHANNEL_LAYER = "none (feeds listen for hints)"


def scope_user(scope: dict):
    """The `?token=` key's user if a token is given (a bad one is nobody), else the session's."""
    token = parse_qs(scope.get("query_string", b"").decode()).get("token")
    if token:
        from chat.auth import token_user

        return token_user(token[0])
    user = scope.get("user")
    return user if user is not None and user.is_authenticated else None


class SocketCount:
    """Open sockets per user in this process. Sockets of one process may run on several event
    loops (tests do), hence the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: Counter[object] = Counter()

    def take(self, user_id: object, limit: int) -> bool:
        """Count one more socket for the user, unless that would pass `limit` (0: no limit)."""
        with self.lock:
            if limit and self.open[user_id] >= limit:
                return False
            self.open[user_id] += 1
            return True

    def give_back(self, user_id: object) -> None:
        with self.lock:
            self.open[user_id] -= 1
            if self.open[user_id] <= 0:
                del self.open[user_id]

    def __getitem__(self, user_id: object) -> int:
        with self.lock:
            return self.open[user_id]


OPEN_SOCKETS = SocketCount()


def describe_frame(message: dict) -> str:
    if message.get("text") is not None:
        return f"a text frame of {len(message['text'])} characters"
    return f"a binary frame of {len(message.get('bytes') or b'')} bytes"


class GuardedConsumer(AsyncJsonWebsocketConsumer):
    """A socket whose every ending gives back what it held, and that refuses client frames."""

    channel_layer_alias = NO_CHANNEL_LAYER

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.leases: list[Callable[[], None]] = []
        self.ended = False

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:  # a bug, not the client: say it once, with its traceback; never a 500
            log.exception("%s failed on %s", type(self).__name__, scope.get("path"))
            await self.end(INTERNAL_ERROR)
        finally:
            self.release()

    def hold(self, release: Callable[[], None]) -> None:
        """Remember to undo something when this socket ends, however it ends."""
        self.leases.append(release)

    def release(self) -> None:
        while self.leases:
            undo = self.leases.pop()
            try:
                undo()
            except Exception:
                log.exception("%s could not release %r", type(self).__name__, undo)

    async def end(self, code: int | None = None) -> None:
        """Close from our side, giving back what the socket held now rather than when the
        client's close arrives (which a misbehaving client may never send)."""
        if self.ended:
            return
        self.ended = True
        self.release()
        try:
            await self.close(code=code)
        except Exception as exc:  # e.g. a server refusing the code: fortune_project/daphne_close_codes.py
            log.warning("%s could not close with %s: %r", type(self).__name__, code, exc)

    async def websocket_receive(self, message: dict) -> None:
        """No frame is accepted on these sockets (the server only talks), so any frame ends the
        socket with 1003 and one log line; frames already on the way are ignored."""
        if self.ended:
            return
        log.info("closing a %s socket with 1003: the client sent %s", type(self).__name__, describe_frame(message))
        await self.end(UNSUPPORTED_FRAME)


class NoSuchSocket(GuardedConsumer):
    """Every path no route matches: 4404 after the handshake, instead of the router's ValueError
    that the server answers with a 500."""

    async def connect(self) -> None:
        await self.accept()  # a close code only reaches the client after the handshake
        await self.end(NOT_FOUND)


class PollingConsumer(GuardedConsumer):
    """A socket fed by a shared feed (chat/fanout.py), counted under its user's cap."""

    def admit(self, user) -> bool:
        """Take one of the user's socket slots for as long as this socket lives."""
        if not OPEN_SOCKETS.take(user.pk, settings.WS_MAX_SOCKETS_PER_USER):
            log.info("refused a %s socket with 4429: user %s has too many open", type(self).__name__, user.pk)
            return False
        self.hold(lambda: OPEN_SOCKETS.give_back(user.pk))
        return True

    def watch(self, key: str, make: Callable[[], Feed]) -> None:
        """Subscribe to the feed for `key` (started by the first socket, stopped by the last)."""
        self.hold(hub().join(key, make, self))

    async def deliver(self, text: str) -> None:
        if not self.ended:
            await self.send(text_data=text)

    async def finish(self, code: int | None) -> None:
        await self.end(code)
