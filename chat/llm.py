"""The one module that talks to an LLM: any OpenAI-compatible server through the `openai` client.

`stream_reading()` is the single call (a breaker wraps it in one line). It can never outlive
its budget: the HTTP stream is read in a daemon thread that hands chunks over a queue, and the
caller waits on that queue with the smaller of the time left and the allowed gap between
chunks. Socket timeouts alone cannot promise that: a server that drips bytes which never form
an event keeps every read short while the call goes on forever.

`endpoint` (chat/llm_endpoints.py) names the server, key and model; the primary by default.

Failures come out as three exceptions: LLMTimeout (budget or chunk gap exceeded), LLMBadOutput
(unparseable, empty or non-text reply) and LLMError (anything else: HTTP status, connection).

Size cap: once the reply passes LLM_MAX_CHARS we stop reading and cut it at the last sentence
end before the cap. A long-winded but sound reading is still worth showing, and the text the
user already watched stream in stays a prefix of the final one; it is logged, not degraded.
"""

import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable

import openai
from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from chat.llm_endpoints import Endpoint, primary
from fortune_project.resilience.deadlines import Deadline

log = logging.getLogger(__name__)

# How often a waiting caller hears the current text again, so a throttled saver never sits on
# unsaved text for long (chat/live.py saves at most every 250 ms, at least every 500 ms).
TICK = 0.25
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SENTENCE_END = re.compile(r"[.!?。！？…]\s|\n")

OnText = Callable[[str], object]


class LLMError(Exception):
    """The LLM call failed: HTTP error status, connection refused or reset, anything unexpected."""


class LLMTimeout(LLMError):
    """No complete reply within the budget, or too long a silence between chunks."""


class LLMBadOutput(LLMError):
    """The reply could not be parsed, or held no usable text."""


def llm_configured() -> bool:
    return bool(settings.LLM_BASE_URL or settings.OPENAI_API_KEY)


@functools.lru_cache(maxsize=16)
def _client(base_url: str, api_key: str, pid: int) -> openai.OpenAI:
    """One client per process and configuration; `pid` keeps a forked worker off its parent's sockets."""
    return openai.OpenAI(base_url=base_url or None, api_key=api_key or "none", max_retries=0)


def client(endpoint: Endpoint | None = None) -> openai.OpenAI:
    endpoint = endpoint or primary()
    return _client(endpoint.base_url, endpoint.api_key, os.getpid())


def http_timeout(budget: float) -> openai.Timeout:
    """Each socket operation waits at most the chunk gap, and never longer than the whole budget."""
    return openai.Timeout(
        connect=min(5.0, budget),
        read=min(settings.LLM_CHUNK_TIMEOUT, budget),
        write=min(5.0, budget),
        pool=min(1.0, budget),
    )


def stream_reading(
    messages: list[ChatCompletionMessageParam],
    *,
    deadline: Deadline,
    on_text: OnText | None = None,
    endpoint: Endpoint | None = None,
) -> str:
    """Stream a chat completion and return its text, capped at LLM_MAX_CHARS, by `deadline`.

    `on_text(text)` receives the accumulated text after each chunk and every TICK seconds while
    waiting; if it returns False (the task was cancelled) reading stops and the text so far is
    returned as is. Raises LLMTimeout, LLMBadOutput or LLMError.
    """
    endpoint = endpoint or primary()
    budget_seconds = deadline.for_call(endpoint.breaker)
    feed = _Feed()
    args = (endpoint, messages, budget_seconds, feed)
    threading.Thread(target=_pump, args=args, name="llm-stream", daemon=True).start()
    started = time.monotonic()
    try:
        text, complete = _collect(feed, started, budget_seconds, on_text or (lambda text: None))
    finally:
        feed.cancel()
    elapsed = time.monotonic() - started
    stopped = "" if complete else " (stopped early)"
    log.info("llm reply from %s: %d chars in %.2f s%s", endpoint.name, len(text), elapsed, stopped)
    return usable_text(text) if complete else text


class _Feed:
    """What the stream thread hands to the caller: ("text", delta), ("done", None) or ("error", exc)."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.stream: openai.Stream | None = None

    def cancel(self) -> None:
        """Tell the stream thread to stop and close its response, without ever blocking the caller."""
        self.cancelled.set()
        stream = self.stream
        if stream is not None:
            threading.Thread(target=_close_quietly, args=(stream,), name="llm-close", daemon=True).start()


def _close_quietly(stream: openai.Stream) -> None:
    try:
        stream.close()
    except Exception:  # the reading thread may be tearing it down at the same moment
        pass


def _pump(endpoint: Endpoint, messages: list[ChatCompletionMessageParam], budget: float, feed: _Feed) -> None:
    """Runs in the stream thread: the HTTP call and the chunk loop."""
    try:
        stream = client(endpoint).chat.completions.create(
            model=endpoint.model,
            messages=messages,
            stream=True,
            temperature=0.7,
            max_tokens=max(64, settings.LLM_MAX_CHARS // 2),
            timeout=http_timeout(budget),
        )
        feed.stream = stream
        with stream:
            for chunk in stream:
                if feed.cancelled.is_set():
                    return
                if delta := chunk_text(chunk):
                    feed.items.put(("text", delta))
        feed.items.put(("done", None))
    except BaseException as exc:  # handed to the caller, which maps it
        feed.items.put(("error", exc))


def _collect(feed: _Feed, started: float, budget: float, on_text: OnText) -> tuple[str, bool]:
    """Wait for chunks until the reply is done; returns (text, complete)."""
    gap, cap = settings.LLM_CHUNK_TIMEOUT, settings.LLM_MAX_CHARS
    text, last_chunk = "", started
    while True:
        now = time.monotonic()
        if now - started >= budget:
            raise LLMTimeout(f"no complete reply within {budget:.1f} s")
        if now - last_chunk >= gap:
            raise LLMTimeout(f"no chunk for {gap:.1f} s")
        try:
            kind, value = feed.items.get(timeout=min(started + budget - now, last_chunk + gap - now, TICK))
        except queue.Empty:
            if text and on_text(text) is False:
                return text, False
            continue
        if kind == "done":
            return text, True
        if kind == "error":
            raise llm_exception(value)
        text, last_chunk = text + value, time.monotonic()
        if len(text) > cap:
            log.warning("llm reply passed LLM_MAX_CHARS (%d); cut at a sentence end", cap)
            return cap_text(text, cap), True
        if on_text(text) is False:
            return text, False


def chunk_text(chunk: object) -> str:
    """The text in one streamed chunk ("" for role-only or usage chunks)."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        raise LLMBadOutput("a streamed chunk without choices")
    if not choices:
        return ""
    content = getattr(getattr(choices[0], "delta", None), "content", None)
    if content is not None and not isinstance(content, str):
        raise LLMBadOutput("a streamed chunk whose content is not text")
    return content or ""


def llm_exception(exc: BaseException) -> BaseException:
    """Our exception for whatever the stream thread raised."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(f"the LLM server did not answer in time: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the LLM server answered HTTP {exc.status_code}")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"could not reach the LLM server: {exc}")
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        # json.JSONDecodeError, UnicodeDecodeError and pydantic's ValidationError are ValueErrors
        return LLMBadOutput(f"unreadable reply: {type(exc).__name__}: {exc}"[:300])
    return LLMError(f"{type(exc).__name__}: {exc}"[:300])


def usable_text(text: str) -> str:
    """The reply as plain text; LLMBadOutput if nothing readable is left."""
    text = _CONTROL.sub("", text).replace("\r\n", "\n").strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    if not text:
        raise LLMBadOutput("empty reply")
    letters = sum(ch.isalpha() for ch in text)
    if letters < 2 or text.count("\ufffd") > len(text) / 10:
        raise LLMBadOutput("the reply holds no readable text")
    return text


def cap_text(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at the last sentence end in its second half."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() >= limit // 2]
    if ends:
        return head[: ends[-1]].rstrip()
    return head[: limit - 1].rsplit(" ", 1)[0].rstrip() + "…"
