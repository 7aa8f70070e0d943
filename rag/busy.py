"""`GET /poems/search` refused on the event loop, before Django, while search is full.

Past SEARCH_CONCURRENCY the search view answers 503 `rag_busy` at once, but reaching the view
costs a whole Django request: a thread, the middleware, the token's database read and the
throttle's cache write. Behind a burst (80 parallel searches) those refusals were most of the
web process's Python work, and the event loop waited behind them for the GIL. `asgi()` lets at
most SEARCH_CONCURRENCY searches into Django at once (and none while every search slot is still
held, by an embedding abandoned at its timeout): the next one gets the view's own 503
`rag_busy` (same body, same Retry-After) from the loop, in microseconds. A search it lets
through is still authenticated, throttled and bounded by the view as before; a refusal says no
more than the view's would (that this process is busy), to anyone, and costs no thread.
"""

import functools
import json
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.urls import reverse

from fortune_project.errors import error_body
from rag.retrieval import SEARCH_SLOTS
from rag.views import RAG_BUSY_MESSAGE, RAG_BUSY_RETRY

ASGIApp = Callable[..., Awaitable[None]]


def asgi(app: ASGIApp) -> ASGIApp:
    inside = 0  # searches this process let through that have not answered yet

    async def refuse_when_full(scope: dict, receive: Callable, send: Callable) -> None:
        nonlocal inside
        if not _search(scope):
            await app(scope, receive, send)
            return
        if inside >= settings.SEARCH_CONCURRENCY or SEARCH_SLOTS.active >= settings.SEARCH_CONCURRENCY:
            await _refuse(scope, send)
            return
        inside += 1  # the loop runs one coroutine at a time: no lock needed
        try:
            await app(scope, receive, send)
        finally:
            inside -= 1

    return refuse_when_full


async def _refuse(scope: dict, send: Callable) -> None:
    raw = json.dumps(error_body("rag_busy", RAG_BUSY_MESSAGE)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        (b"retry-after", str(RAG_BUSY_RETRY).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else raw})


def _search(scope: dict) -> bool:
    return scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] == _path()


@functools.cache
def _path() -> str:
    return reverse("poem-search")
