"""One poller per watched thing, shared by every socket that watches it (issue 11).

Each socket used to poll for itself, so 400 sockets on one task meant 400 pollers reading the
same row, and a crashed socket left its poller running for good. Now a `Feed` polls once and
hands the same encoded message to all its subscribers; the `Hub` keeps one feed per key,
starts it with its first subscriber and stops it when the last one leaves. A socket only
subscribes and unsubscribes (chat/sockets.py), so it has no background work of its own to leak.

A subscriber that joins is a newcomer until the feed's next poll, which sends it the full
picture (and is started at once, since joining wakes the feed); after that it gets what changed,
like everyone else. With Redis the feed listens on its hint group through a channel of its own,
so one hint from a worker wakes one poll for all the sockets (the in-memory layer cannot cross
processes, shared/NOTES.md: there the polling carries everything).

There is one hub per event loop, which is one per web process.
"""

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder

from chat.live import hints_enabled

log = logging.getLogger(__name__)

INTERNAL_ERROR = 1011
HINT_TIMEOUT = 5.0  # seconds to join or leave a hint group: a slow Redis must not stall a feed
HINT_RETRY = 5.0  # seconds between attempts to read hints while Redis fails


class Subscriber(Protocol):
    """What a feed needs of a socket."""

    async def deliver(self, text: str) -> None: ...

    async def finish(self, code: int | None) -> None: ...


def encode(message: dict) -> str:
    return json.dumps(message, cls=DjangoJSONEncoder)


class Feed:
    """Polls one thing for all its subscribers. Subclasses say how to poll (`poll_once`) and how
    often (`interval`)."""

    def __init__(self, key: str, group: str | None = None) -> None:
        self.key, self.group = key, group
        self.subscribers: dict[Subscriber, None] = {}  # a dict keeps the order they joined
        self.newcomers: dict[Subscriber, None] = {}
        self.wake = asyncio.Event()
        self.hinted = False
        self.channel: str | None = None  # this feed's own channel on the layer, for hints
        self.hub: Hub | None = None
        self.task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} ({len(self.subscribers)} sockets)>"

    # --- subscribers -------------------------------------------------------------------------

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber] = None
        self.newcomers[subscriber] = None
        self.wake.set()  # a newcomer should not wait a whole interval for its first picture

    def remove(self, subscriber: Subscriber) -> bool:
        """Drop a subscriber; True when none is left."""
        self.subscribers.pop(subscriber, None)
        self.newcomers.pop(subscriber, None)
        return not self.subscribers

    def roll_call(self) -> tuple[list[Subscriber], list[Subscriber]]:
        """(newcomers, regulars): who needs the full picture this poll and who only the changes.
        Call it right before sending, with no await since the poll: whoever joins later is a
        newcomer of the next poll."""
        newcomers = list(self.newcomers)
        self.newcomers.clear()
        regulars = [s for s in self.subscribers if s not in newcomers]
        return newcomers, regulars

    def everyone(self) -> list[Subscriber]:
        return list(self.subscribers)

    async def publish(self, message: dict, to: list[Subscriber]) -> None:
        """Encode once, send to each; a socket that cannot take it is dropped, not the feed."""
        text = encode(message)
        for subscriber in to:
            if subscriber not in self.subscribers:  # left while we were sending to the others
                continue
            try:
                await subscriber.deliver(text)
            except Exception as exc:
                log.info("%r dropped a socket that could not take a message: %r", self, exc)
                self.remove(subscriber)

    async def close_all(self, code: int | None = None) -> None:
        """End every subscriber's socket, and this feed with them."""
        self.detach()
        for subscriber in self.everyone():
            self.remove(subscriber)
            try:
                await subscriber.finish(code)
            except Exception as exc:
                log.info("%r could not close a socket: %r", self, exc)

    def detach(self) -> None:
        """Leave the hub, so a socket arriving from now on starts a feed of its own."""
        if self.hub is not None:
            self.hub.forget(self)

    # --- the loop ----------------------------------------------------------------------------

    def interval(self) -> float:
        raise NotImplementedError

    async def poll_once(self) -> bool:
        """Look once and tell the subscribers; False when the feed is done (it closed them)."""
        raise NotImplementedError

    async def run(self) -> None:
        listener = None
        try:
            listener = await self.listen_for_hints()
            while await self.poll_once():
                await self.sleep(self.interval())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%r failed", self)
            await self.close_all(INTERNAL_ERROR)
        finally:
            self.detach()
            if listener is not None:
                listener.cancel()
            if self.channel is not None:
                await self.leave_group()

    async def sleep(self, seconds: float) -> None:
        """Until the next poll: `seconds`, or less when a hint or a newcomer arrives."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self.wake.clear()

    # --- hints (Redis only) ------------------------------------------------------------------

    async def listen_for_hints(self) -> asyncio.Task | None:
        """Join the hint group before the first poll, so no hint sent after it is missed.
        Without a cross-process layer, or when Redis fails, the feed just polls."""
        if self.group is None or not hints_enabled():
            return None
        layer = get_channel_layer()
        assert layer is not None  # hints_enabled() said so
        try:
            channel: str = await asyncio.wait_for(layer.new_channel(), HINT_TIMEOUT)
            self.channel = channel
            await asyncio.wait_for(layer.group_add(self.group, channel), HINT_TIMEOUT)
        except Exception as exc:
            log.warning("%r polls without hints: %r", self, exc)
            return None
        self.hinted = True
        return asyncio.create_task(self.read_hints(layer, channel), name=f"feed {self.key} hints")

    async def read_hints(self, layer, channel: str) -> None:
        failing = False
        while True:
            try:
                await layer.receive(channel)
            except Exception as exc:  # Redis down: say so once, retry slowly, keep polling meanwhile
                if not failing:
                    log.warning("%r cannot read hints: %r", self, exc)
                failing = True
                await asyncio.sleep(HINT_RETRY)
                continue
            failing = False
            self.wake.set()

    async def leave_group(self) -> None:
        layer = get_channel_layer()
        if layer is None or self.group is None or self.channel is None:
            return
        try:
            await asyncio.wait_for(layer.group_discard(self.group, self.channel), HINT_TIMEOUT)
        except (Exception, asyncio.CancelledError) as exc:  # the group entry expires by itself
            log.info("%r could not leave its hint group: %r", self, exc)


class Hub:
    """The feeds of one event loop, by key: at most one running feed per key."""

    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {}

    def join(self, key: str, make: Callable[[], Feed], subscriber: Subscriber) -> Callable[[], None]:
        """Subscribe to the feed for `key`, starting it if none runs; returns how to leave."""
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = make()
            feed.hub = self
            feed.task = asyncio.create_task(feed.run(), name=f"feed {key}")
        feed.add(subscriber)
        return lambda: self.leave(feed, subscriber)

    def leave(self, feed: Feed, subscriber: Subscriber) -> None:
        """The last subscriber out stops the feed."""
        if feed.remove(subscriber) and self.feeds.get(feed.key) is feed:
            self.forget(feed)
            if feed.task is not None:
                feed.task.cancel()

    def forget(self, feed: Feed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub() -> Hub:
    """This event loop's hub (feeds are tasks of one loop; tests run several loops in turn)."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        found = _hubs.get(loop)
        if found is None:
            found = _hubs[loop] = Hub()
        return found
