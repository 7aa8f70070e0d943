"""LLM failover endpoints from the environment (read once, by settings).

    LLM_FALLBACKS=backup,local
    LLM_FALLBACK_BACKUP_BASE_URL=https://…/v1   LLM_FALLBACK_BACKUP_API_KEY=… (or _API_KEY_FILE)
    LLM_FALLBACK_BACKUP_MODEL=…  LLM_FALLBACK_BACKUP_TIMEOUT=…  LLM_FALLBACK_BACKUP_MIN_TIME=…

Each becomes a plain dict in settings.LLM_FALLBACKS, in order; its breaker is `llm-<name>`.
"""

import re

from django.core.exceptions import ImproperlyConfigured

from fortune_project.env import envfloat, envlist, envstr

PRIMARY = "primary"  # the endpoint name of LLM_BASE_URL / OPENAI_API_KEY (its breaker is `llm`)
# Lower-case letters and digits, single underscores: a breaker name, an env name part and a JSON key.
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def breaker_name(endpoint: str) -> str:
    return "llm" if endpoint == PRIMARY else f"llm-{endpoint}"


def fallback_endpoints(default_model: str, default_timeout: float, default_min_time: float) -> list[dict]:
    """The endpoints LLM_FALLBACKS names, in order; ImproperlyConfigured on a bad name or value."""
    found: list[dict] = []
    for raw in envlist("LLM_FALLBACKS"):
        name = raw.lower()
        if not _NAME.match(name) or name == PRIMARY:
            raise ImproperlyConfigured(
                f"LLM_FALLBACKS: {raw!r} is not a usable name (letters, digits and single underscores; not 'primary')"
            )
        if name in (e["name"] for e in found):
            raise ImproperlyConfigured(f"LLM_FALLBACKS names {raw!r} twice")
        found.append(_endpoint(name, default_model, default_timeout, default_min_time))
    return found


def _endpoint(name: str, default_model: str, default_timeout: float, default_min_time: float) -> dict:
    env = f"LLM_FALLBACK_{name.upper()}_"
    base_url, api_key = envstr(env + "BASE_URL"), envstr(env + "API_KEY")
    if not (base_url or api_key):
        raise ImproperlyConfigured(f"LLM_FALLBACKS names {name!r}, but neither {env}BASE_URL nor {env}API_KEY is set")
    return {
        "name": name,
        "base_url": base_url,
        "api_key": api_key,
        "model": envstr(env + "MODEL", default_model),
        "timeout": envfloat(env + "TIMEOUT", default_timeout, minimum=0.1),
        "min_time": envfloat(env + "MIN_TIME", default_min_time, minimum=0.1),
    }
