"""The LLM endpoints a reading may use, in order: the primary (LLM_BASE_URL / OPENAI_API_KEY,
breaker `llm`) and the fallbacks LLM_FALLBACKS names (breaker `llm-<name>`). Plain values only:
chat/llm.py calls one, chat/interpretation.py walks the chain."""

from dataclasses import dataclass

from django.conf import settings

from fortune_project.llm_config import PRIMARY, breaker_name


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    api_key: str
    model: str
    timeout: float  # seconds one call may take (capped by the task's time left)
    min_time: float  # seconds that must be left to start a call as a fallback

    @property
    def breaker(self) -> str:
        return breaker_name(self.name)

    @property
    def is_primary(self) -> bool:
        return self.name == PRIMARY

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)

    def reason(self, code: str) -> str:
        """A degraded reason about this endpoint: the bare code for the primary (as before
        failover existed), `code:name` for a fallback."""
        return code if self.is_primary else f"{code}:{self.name}"

    def describe(self) -> dict:
        return {"endpoint": self.name, "model": self.model}


def primary() -> Endpoint:
    return Endpoint(
        PRIMARY,
        settings.LLM_BASE_URL,
        settings.OPENAI_API_KEY,
        settings.LLM_MODEL,
        settings.LLM_TIMEOUT,
        settings.LLM_FAILOVER_MIN_TIME,
    )


def fallbacks() -> list[Endpoint]:
    return [Endpoint(**raw) for raw in getattr(settings, "LLM_FALLBACKS", [])]


def chain() -> list[Endpoint]:
    """The configured endpoints in the order a reading tries them; empty: the offline reader."""
    return [e for e in (primary(), *fallbacks()) if e.configured]


def names() -> list[str]:
    """The configured endpoints' names, in order (metrics and the dashboard report these)."""
    return [e.name for e in chain()]
