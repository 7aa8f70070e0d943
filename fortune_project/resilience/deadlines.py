"""Deadlines and call budgets: the one type that says how long a blocking call may take.

A task carries an absolute deadline. A stage (retrieval, the LLM reading) works inside a child
deadline, `deadline.stage(name, limit)`: the sooner of its own limit and the task's end. Each
call asks `for_call(name)` for the seconds it may take. When a stage's time is spent, the next
call is not made: `BudgetSpent` (an Ignored error, so no breaker blames the dependency); when the
task's own time is spent, `DeadlineExceeded` ends the task. A call that ignores its budget is
abandoned in a daemon thread rather than waited on (`call_with_timeout`).
"""

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from django.utils import timezone

from fortune_project.resilience.breaker_config import Ignored

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The task's own deadline has passed; nothing more may be started."""


class BudgetSpent(Ignored):
    """A stage's time ran out between calls: nothing to blame on the dependency (Ignored)."""


class StageTimeout(Exception):
    """A named call ran past its budget."""

    def __init__(self, name: str, seconds: float):
        super().__init__(f"{name} took longer than {seconds:.1f} s")
        self.name = name
        self.seconds = seconds


@dataclass
class Deadline:
    """An end in time. A `final` deadline (a task's) ends the work when it passes: DeadlineExceeded.
    Any other (a stage's, a request's call budget) only stops further calls: BudgetSpent."""

    at: datetime
    clock: Callable[[], datetime] = field(default=timezone.now)
    name: str = "task"
    final: bool = True
    task: "Deadline | None" = None  # a stage's enclosing final deadline

    @classmethod
    def after(
        cls, seconds: float, clock: Callable[[], datetime] = timezone.now, name: str = "task", final: bool = True
    ) -> "Deadline":
        return cls(clock() + timedelta(seconds=seconds), clock, name, final)

    def remaining(self) -> float:
        return (self.at - self.clock()).total_seconds()

    def budget(self, limit: float = math.inf) -> float:
        """Seconds a stage limited to `limit` may use now; DeadlineExceeded once the task's time is up."""
        task = self.task or self
        if task.final and task.remaining() <= 0:
            raise DeadlineExceeded(f"deadline {task.at.isoformat()} has passed")
        return min(limit, self.remaining())

    def stage(self, name: str, limit: float, reserve: float = 0.0) -> "Deadline":
        """A child deadline for one stage: `limit` seconds from now, ending `reserve` seconds
        before this one at the latest. DeadlineExceeded if the task's time is already up."""
        seconds = min(self.budget(limit), self.remaining() - reserve)
        return Deadline(self.clock() + timedelta(seconds=seconds), self.clock, name, False, self.task or self)

    def for_call(self, name: str, limit: float = math.inf) -> float:
        """Seconds the named call may take now. When none remain the call is not made: a stage
        raises BudgetSpent (nothing to blame on the dependency), a final deadline DeadlineExceeded."""
        left = self.remaining()
        if left <= 0 and self.final:
            raise DeadlineExceeded(f"deadline {self.at.isoformat()} has passed before {name}")
        if left <= 0:
            raise BudgetSpent(f"no {self.name} time left for {name}")
        return min(limit, left)


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
