"""WebSocket /ws/monitoring/: the operations snapshot, live, for staff.

Sends {"type": "snapshot", "snapshot": {...dashboard...}} on connect and again whenever it
changes. Workers, breakers and tasks change in other processes and the in-memory channel layer
cannot carry their news (shared/NOTES.md), so one `SnapshotFeed` per web process (chat/fanout.py)
builds the snapshot every OPS_LIVE_POLL seconds for all the sockets, and sends only when the
picture differs; with Redis, hints from the workers (chat/signals.py) make it poll at once. Ages
and elapsed times are left out of the comparison (the page ticks them itself) but a fresh
snapshot goes out at least every RESEND_EVERY seconds. Close codes: 4403 not staff (also when not
logged in), 4429 too many sockets, 1003 the client sent a frame.
"""

import json
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from chat.fanout import Feed
from chat.signals import WORKERS_GROUP
from chat.sockets import TOO_MANY_SOCKETS, PollingConsumer, scope_user
from monitoring.dashboard import live_snapshot

log = logging.getLogger(__name__)

NOT_STAFF = 4403
FEED_KEY = "monitoring"
RESEND_EVERY = 10.0
VOLATILE = frozenset(
    {"generated_at", "time", "heartbeat", "uptime_s", "busy_ms", "oldest_queued_age_ms", "age_s", "web_pid"}
)


def _stable(value: object) -> object:
    """The snapshot without the fields that change by the mere passing of time."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def fingerprint(snap: dict) -> str:
    return json.dumps(_stable(snap), sort_keys=True, cls=DjangoJSONEncoder)


def staff_user(scope: dict):
    user = scope_user(scope)
    return user if user is not None and user.is_active and user.is_staff else None


class SnapshotFeed(Feed):
    """The one snapshot builder for every /ws/monitoring/ socket of this process."""

    def __init__(self) -> None:
        super().__init__(FEED_KEY, group=WORKERS_GROUP)
        self.sent, self.sent_at = "", float("-inf")
        self.failing = False

    def interval(self) -> float:
        return settings.OPS_LIVE_POLL

    async def poll_once(self) -> bool:
        snap = await self.read_snapshot()
        if snap is None:
            return True  # newcomers stay newcomers until there is a picture to give them
        newcomers, regulars = self.roll_call()
        digest = fingerprint(snap)
        if digest != self.sent or time.monotonic() - self.sent_at >= RESEND_EVERY:
            await self.publish({"type": "snapshot", "snapshot": snap}, [*regulars, *newcomers])
            self.sent, self.sent_at = digest, time.monotonic()
        elif newcomers:
            await self.publish({"type": "snapshot", "snapshot": snap}, newcomers)
        return True

    async def read_snapshot(self) -> dict | None:
        """None when the state cannot be read just now (a locked database): try again next poll."""
        try:
            snap = await database_sync_to_async(live_snapshot)()
        except Exception as exc:  # the traceback once per outage, then one line per failed poll
            log.warning("monitoring snapshot failed: %r", exc, exc_info=not self.failing)
            self.failing = True
            return None
        self.failing = False
        return snap


class MonitoringConsumer(PollingConsumer):
    async def connect(self) -> None:
        await self.accept()  # a close code only reaches the client after the handshake
        user = await database_sync_to_async(staff_user)(self.scope)
        if user is None:
            await self.end(NOT_STAFF)
        elif not self.admit(user):
            await self.end(TOO_MANY_SOCKETS)
        else:
            self.watch(FEED_KEY, SnapshotFeed)
