"""Bulkheads: a per-process cap on concurrent work that refuses at once past it.

A semaphore acquired without blocking: past the cap the caller gets `BulkheadFull` at once (an
API answers 503 with Retry-After) instead of queueing without limit behind CPU-bound work that
would slow every other request down. A slot is released when the *work* ends, not when its
caller stops waiting: work abandoned by `call_with_timeout` still holds its slot until it
finishes, so the cap bounds the work really running.
"""

import os
import threading
from collections.abc import Callable


class BulkheadFull(Exception):
    """Every slot is taken; try again shortly."""

    def __init__(self, name: str, limit: int):
        super().__init__(f"{name}: all {limit} slots are busy")
        self.name = name
        self.limit = limit


class Slot:
    """One holder's place in a bulkhead; `release()` may be called any number of times."""

    def __init__(self, bulkhead: "Bulkhead"):
        self._bulkhead = bulkhead
        self._held = True
        self._pid = bulkhead._pid

    def release(self) -> None:
        with self._bulkhead._lock:
            if self._held and self._pid == self._bulkhead._pid:  # not a count reset by a fork
                self._bulkhead._active -= 1
            self._held = False

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Bulkhead:
    """At most `limit()` slots held at once in this process; `limit` is read on every acquire,
    so a changed setting applies at once."""

    def __init__(self, name: str, limit: Callable[[], int]):
        self.name = name
        self._limit = limit
        self._lock = threading.Lock()
        self._active = 0
        self._pid = os.getpid()

    def acquire(self) -> Slot:
        """A slot, or BulkheadFull at once; never waits."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child inherits the count, not the holders
                self._pid, self._active = os.getpid(), 0
            limit = self._limit()
            if self._active >= limit:
                raise BulkheadFull(self.name, limit)
            self._active += 1
        return Slot(self)

    @property
    def active(self) -> int:
        return self._active
