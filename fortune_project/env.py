"""Typed readers for environment variables; a bad value stops start-up with a clear message."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    """A string; `NAME_FILE` may point at a file holding the value (for secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e}") from e
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def envnum(name: str, default: float, *, minimum: float = 0, cast: type = int) -> float:
    """An int (or, with cast=float, a float) no smaller than `minimum`."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return cast(default)
    try:
        value = cast(raw.strip())
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ImproperlyConfigured(f"{name}={raw!r} is not {kind}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    return int(envnum(name, default, minimum=minimum, cast=int))


def envfloat(name: str, default: float, *, minimum: float = 0) -> float:
    return float(envnum(name, default, minimum=minimum, cast=float))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = envstr(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


# DRF reads only the period's first letter; accept whole words so "60/ms" is not taken per minute.
_RATE = re.compile(r"^[1-9][0-9]*/(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)$")


def envrate(name: str, default: str) -> str:
    """A DRF throttle rate such as `60/min`; DRF itself would only fail at the first request."""
    value = envstr(name, default).strip()
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 60/min (per s, min, hour or day)")
    return value
