"""The interpretation seam the pipeline calls: an LLM reading streamed as it is written, or the
offline reader as the graceful fallback, marked degraded with the reason:

  llm_unconfigured  no LLM_BASE_URL / OPENAI_API_KEY
  llm_timeout       the call ran past min(LLM_TIMEOUT, the task's time left), or stalled
  llm_error         HTTP error, connection failure, anything unexpected
  llm_breaker_open  the llm breaker is open: the LLM is known bad, so it is not called at all
  llm_bad_output    unparseable, empty or unreadable reply

Raises nothing but DeadlineExceeded (the task's own time is up before we start).
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from chat import llm, prompt
from chat.live import TextPublisher
from chat.offline_reader import compose_reading
from fortune_project.resilience.breakers import BreakerOpen, get_breaker
from fortune_project.resilience.deadlines import Deadline, DeadlineExceeded
from rag.models import Poem
from rag.passages import Passage

log = logging.getLogger(__name__)

# Kept back from the task's time left for the fallback reading and the final save.
RESERVE_SECONDS = 1.0
MIN_LLM_SECONDS = 0.5


@dataclass
class Interpretation:
    text: str
    degraded_reasons: list[str] = field(default_factory=list)


def interpret(
    question: str,
    poem: Poem,
    passages: list[Passage],
    deadline: Deadline,
    on_text: Callable[[str], object] | None = None,
    *,
    history: Sequence[tuple[str, str]] = (),
    language: str = "en",
) -> Interpretation:
    """A reading from plain values; reads no database (the caller gathers `history`, the
    conversation's earlier (role, content) turns, and loads `poem` with its temple).

    `on_text(text)` saves the text streamed so far; it is called at most every 250 ms and at
    least every 500 ms while text arrives. A False return means the task stopped running."""
    deadline.budget(settings.LLM_TIMEOUT)  # DeadlineExceeded: the task's time is up before we start
    if not llm.llm_configured():
        return fallback(question, poem, passages, "llm_unconfigured")
    reading_time = deadline.stage("llm", settings.LLM_TIMEOUT, reserve=RESERVE_SECONDS)
    if reading_time.remaining() < MIN_LLM_SECONDS:
        return fallback(question, poem, passages, "llm_timeout")  # too little time left to ask
    publisher = TextPublisher(on_text)
    try:
        messages = prompt.build_messages(question, poem, passages, history=history, language=language)
        text = get_breaker("llm").call(llm.stream_reading, messages, deadline=reading_time, on_text=publisher)
    except DeadlineExceeded:
        raise
    except Exception as exc:
        return fallback(question, poem, passages, failure_reason(exc), exc)
    publisher.flush(text)
    return Interpretation(text)


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, BreakerOpen):
        return "llm_breaker_open"
    if isinstance(exc, llm.LLMTimeout):
        return "llm_timeout"
    if isinstance(exc, llm.LLMBadOutput):
        return "llm_bad_output"
    return "llm_error"  # LLMError or a bug: the fallback still answers


def fallback(
    question: str, poem: Poem, passages: list[Passage], reason: str, exc: Exception | None = None
) -> Interpretation:
    if isinstance(exc, llm.LLMError | BreakerOpen):
        log.warning("llm reading failed (%s), using the offline reader: %s", reason, exc)
    elif exc is not None:
        log.exception("llm reading failed unexpectedly, using the offline reader")
    return Interpretation(compose_reading(question, poem, passages), [reason])
