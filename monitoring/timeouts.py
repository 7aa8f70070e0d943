"""Deadlines and stage budgets: the one place that decides how long a blocking call may take.

A task carries an absolute deadline; every stage gets the smaller of its own limit and what
remains, and a call that ignores its budget is abandoned in a daemon thread rather than waited on.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from django.utils import timezone

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The task's own deadline has passed; nothing more may be started."""


class StageTimeout(Exception):
    """A named call ran past its budget."""

    def __init__(self, name: str, seconds: float):
        super().__init__(f"{name} took longer than {seconds:.1f} s")
        self.name = name
        self.seconds = seconds


@dataclass
class Deadline:
    at: datetime
    clock: Callable[[], datetime] = field(default=timezone.now)

    def remaining(self) -> float:
        return (self.at - self.clock()).total_seconds()

    def budget(self, limit: float) -> float:
        """Seconds a stage limited to `limit` may use now; raises once nothing remains."""
        remaining = self.remaining()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline {self.at.isoformat()} has passed")
        return min(limit, remaining)


def call_with_timeout(name: str, seconds: float, fn: Callable[[], T]) -> T:
    """Run `fn` and return its result, or raise StageTimeout after `seconds`.

    For calls with no timeout of their own that may block in C code (ChromaDB): the worker
    moves on and the stuck thread, a daemon, is left to finish or die with the process.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"timeout:{name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise StageTimeout(name, seconds)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
