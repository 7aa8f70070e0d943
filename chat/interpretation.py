"""The interpretation seam the pipeline calls: an LLM reading streamed as it is written, or the
offline reader as the graceful fallback, marked degraded with the reason:

  llm_unconfigured  no LLM_BASE_URL / OPENAI_API_KEY (and no LLM_FALLBACKS)
  llm_timeout       the call ran past min(LLM_TIMEOUT, the task's time left), or stalled
  llm_error         HTTP error, connection failure, anything unexpected
  llm_breaker_open  the llm breaker is open: the LLM is known bad, so it is not called at all
  llm_bad_output    unparseable, empty or unreadable reply

Failover (LLM_FALLBACKS): the endpoints are tried in order, each behind its own breaker (`llm`,
`llm-<name>`); a failed one adds its reason (the bare code for the primary, `code:name` for a
fallback) and the next is tried while its minimum time is left. A fallback's answer adds
`llm_fallback`; text streamed by a failed endpoint is replaced (partial_text restarts empty).
With no fallbacks this is the single call it always was.

Raises nothing but DeadlineExceeded (the task's own time is up before we start).
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from chat import llm, llm_endpoints, prompt
from chat.live import TextPublisher
from chat.llm_endpoints import Endpoint
from chat.offline_reader import compose_reading
from fortune_project.resilience.breakers import BreakerOpen, get_breaker
from fortune_project.resilience.deadlines import Deadline, DeadlineExceeded
from rag.models import Poem
from rag.passages import Passage

log = logging.getLogger(__name__)

# Kept back from the task's time left for the fallback reading and the final save.
RESERVE_SECONDS = 1.0
MIN_LLM_SECONDS = 0.5  # the first endpoint's minimum; later ones need their own min_time


@dataclass
class Interpretation:
    text: str
    degraded_reasons: list[str] = field(default_factory=list)
    llm: dict | None = None  # {"endpoint", "model"} of the endpoint that answered, if one did
    calls: dict[str, dict] = field(default_factory=dict)  # endpoint -> {"ms", "ok"}, each call made


def interpret(
    question: str,
    poem: Poem,
    passages: list[Passage],
    deadline: Deadline,
    on_text: Callable[[str], object] | None = None,
    *,
    history: Sequence[tuple[str, str]] = (),
    language: str = "en",
    topics: Sequence[str] | None = None,
) -> Interpretation:
    """A reading from plain values; reads no database (the caller gathers `history`, the
    conversation's earlier (role, content) turns, and loads `poem` with its temple). `topics`
    are the question's routed topics, best first (retrieval's); both readers answer on them.

    `on_text(text)` saves the text streamed so far; it is called at most every 250 ms and at
    least every 500 ms while text arrives. A False return means the task stopped running."""
    deadline.budget(settings.LLM_TIMEOUT)  # DeadlineExceeded: the task's time is up before we start
    endpoints = llm_endpoints.chain()
    if not endpoints:
        return fallback(question, poem, passages, ["llm_unconfigured"], topics=topics)
    try:
        messages = prompt.build_messages(
            question, poem, passages, history=history, language=language, topics=topics or ()
        )
    except Exception as exc:
        return fallback(question, poem, passages, ["llm_error"], exc, topics=topics)
    failover = Failover(TextPublisher(on_text))
    for position, endpoint in enumerate(endpoints):
        reading_time = deadline.stage(endpoint.breaker, endpoint.timeout, reserve=RESERVE_SECONDS)
        if reading_time.remaining() < (MIN_LLM_SECONDS if position == 0 else endpoint.min_time):
            failover.reasons.append(endpoint.reason("llm_timeout"))  # too little time left to ask
            break
        text = failover.ask(endpoint, messages, reading_time)
        if text is not None:
            return failover.answer(endpoint, text, fallback=not endpoint.is_primary)
    return fallback(question, poem, passages, failover.reasons, calls=failover.calls, topics=topics)


class Failover:
    """One reading's walk along the endpoints: the reasons and call outcomes it collects."""

    def __init__(self, publisher: TextPublisher):
        self.publisher = publisher
        self.reasons: list[str] = []
        self.calls: dict[str, dict] = {}

    def ask(self, endpoint: Endpoint, messages: list[ChatCompletionMessageParam], budget: Deadline) -> str | None:
        """The endpoint's reading, or None (its reason noted, any text it streamed withdrawn)."""
        started = time.monotonic()
        try:
            breaker = get_breaker(endpoint.breaker)  # UnknownBreaker (a bug): an llm_error like any other
            text = breaker.call(
                llm.stream_reading, messages, deadline=budget, on_text=self.publisher, endpoint=endpoint
            )
        except DeadlineExceeded:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            self.reasons.append(endpoint.reason(reason))
            if not isinstance(exc, BreakerOpen):  # an open breaker made no call
                self._record(endpoint, started, ok=False)
            _log_failure(endpoint, reason, exc)
            self.withdraw()
            return None
        self._record(endpoint, started, ok=True)
        return text

    def _record(self, endpoint: Endpoint, started: float, *, ok: bool) -> None:
        self.calls[endpoint.name] = {"ms": int((time.monotonic() - started) * 1000), "ok": ok}

    def withdraw(self) -> None:
        """Restart partial_text: the next endpoint's text replaces the failed one's (the task
        socket sends task.reset when the text it sent is not a prefix of the new one)."""
        if self.publisher.saved or self.publisher.pending:
            self.publisher.flush("")

    def answer(self, endpoint: Endpoint, text: str, *, fallback: bool) -> Interpretation:
        self.publisher.flush(text)
        reasons = [*self.reasons, "llm_fallback"] if fallback else self.reasons
        return Interpretation(text, reasons, llm=endpoint.describe(), calls=self.calls)


def _log_failure(endpoint: Endpoint, reason: str, exc: Exception) -> None:
    if isinstance(exc, llm.LLMError | BreakerOpen):
        log.warning("llm endpoint %s failed (%s): %s", endpoint.name, reason, exc)
    else:
        log.exception("llm endpoint %s failed unexpectedly", endpoint.name)


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, BreakerOpen):
        return "llm_breaker_open"
    if isinstance(exc, llm.LLMTimeout):
        return "llm_timeout"
    if isinstance(exc, llm.LLMBadOutput):
        return "llm_bad_output"
    return "llm_error"  # LLMError or a bug: the fallback still answers


def fallback(
    question: str,
    poem: Poem,
    passages: list[Passage],
    reasons: list[str],
    exc: Exception | None = None,
    calls: dict[str, dict] | None = None,
    topics: Sequence[str] | None = None,
) -> Interpretation:
    if exc is not None:
        log.exception("the reading could not be prepared for the LLM, using the offline reader")
    elif calls is not None:
        log.warning("no llm endpoint answered (%s), using the offline reader", ", ".join(reasons))
    return Interpretation(compose_reading(question, poem, passages, topics), reasons, calls=calls or {})
