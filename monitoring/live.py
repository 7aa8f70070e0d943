"""WebSocket /ws/monitoring/: the operations snapshot, live, for staff.

Sends {"type": "snapshot", "snapshot": {...dashboard...}} on connect and again whenever it
changes. Workers, breakers and tasks change in other processes and the in-memory channel layer
cannot carry their news (shared/NOTES.md), so the consumer polls the shared state every
OPS_LIVE_POLL seconds and sends only when the picture differs; with Redis, hints from the
workers (chat/signals.py) make it poll at once. Ages and elapsed times are left out of the
comparison (the page ticks them itself) but a fresh snapshot goes out at least every
RESEND_EVERY seconds. Close codes: 4403 not staff (also when not logged in).
"""

import json
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from chat.signals import WORKERS_GROUP
from chat.sockets import PollingConsumer, scope_user
from monitoring.dashboard import live_snapshot

log = logging.getLogger(__name__)

NOT_STAFF = 4403
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


class MonitoringConsumer(PollingConsumer):
    async def connect(self) -> None:
        await self.accept()  # a close code only reaches the client after the handshake
        if await database_sync_to_async(staff_user)(self.scope) is None:
            await self.close(code=NOT_STAFF)
            return
        await self.start_watching(WORKERS_GROUP)

    monitoring_changed = PollingConsumer.wake_up

    async def poll_forever(self) -> None:
        sent, sent_at = "", float("-inf")
        while True:
            snap = await self.read_snapshot()
            digest = fingerprint(snap) if snap is not None else sent
            if snap is not None and (digest != sent or time.monotonic() - sent_at >= RESEND_EVERY):
                await self.send_json({"type": "snapshot", "snapshot": snap})
                sent, sent_at = digest, time.monotonic()
            await self.sleep(settings.OPS_LIVE_POLL)

    async def read_snapshot(self) -> dict | None:
        """None when the state cannot be read just now (a locked database): try again next poll."""
        try:
            return await database_sync_to_async(live_snapshot)()
        except Exception:
            log.warning("monitoring snapshot failed", exc_info=True)
            return None
