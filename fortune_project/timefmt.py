"""How the API writes times and durations: the one home of these conversions.

Times are ISO 8601 UTC with a trailing Z (DRF's spelling); durations are whole milliseconds.
"""

from datetime import UTC, datetime
from typing import overload


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z, as DRF writes times elsewhere in the API."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@overload
def from_timestamp(ts: float) -> datetime: ...
@overload
def from_timestamp(ts: None) -> None: ...
def from_timestamp(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def iso_timestamp(ts: float | None) -> str | None:
    """A Unix timestamp written like every other time in the API."""
    return iso(from_timestamp(ts))


def ms(seconds: float) -> int:
    """A duration in seconds as whole milliseconds (the contract: durations in ms)."""
    return round(seconds * 1000)


def ms_between(start: datetime | None, end: datetime | None) -> int | None:
    """Milliseconds from `start` to `end`, never negative; None when either is unknown."""
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))
