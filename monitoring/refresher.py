"""A value rebuilt in the background every few seconds, read at once by whoever asks.

One daemon thread per process (started lazily by the first reader, again after a fork or if it
ever died) calls `build` every `interval` seconds and keeps the last value with the time it was
built. Readers never wait on `build` once one value exists: they get the last value and its age,
and judge for themselves how old is too old. A failing `build` is logged once per failure
streak and keeps the previous value, which then ages: a stuck or failing refresher shows as a
stale value, never as a fresh one.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import close_old_connections

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    value: T
    built_at: float  # time.monotonic()

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.monotonic() if now is None else now) - self.built_at)


class Refresher(Generic[T]):
    def __init__(self, name: str, build: Callable[[], T], interval: Callable[[], float]):
        self.name, self.build, self.interval = name, build, interval
        self._latest: Snapshot[T] | None = None
        self._first = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    def latest(self, wait: float = 0.0) -> Snapshot[T] | None:
        """The last value built (None before the first); waits up to `wait` s only for a first."""
        self.ensure_running()
        if self._latest is None and wait > 0:
            self._first.wait(wait)
        return self._latest

    def ensure_running(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid, self._stop = os.getpid(), threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=True)
            self._thread.start()

    def refresh(self) -> None:
        """Build once now, in the calling thread (the loop's step; tests call it directly)."""
        self._latest = Snapshot(self.build(), time.monotonic())
        self._first.set()

    def stop(self) -> None:
        """Ends the loop after its current step (tests; a process simply exits)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._thread = None

    def _run(self, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
                if failing:
                    log.warning("%s: building again", self.name)
                failing = False
            except Exception:
                if not failing:
                    log.exception("%s: build failed; serving the last value as it ages", self.name)
                failing = True
            finally:
                close_old_connections()  # a broken or expired connection is reopened next time
            stop.wait(max(0.05, self.interval() - (time.monotonic() - started)))
