"""A bound on the HTTP requests Django handles at once in one web process.

Under ASGI Django runs each request's sync code in a thread of its own: behind a burst (80
parallel searches) some 80 Python threads want the GIL at once, and the event loop, which
serves the public health answer and every WebSocket, waits its turn behind all of them
(measured: health p99 400 ms against 4 ms idle). `bounded()` lets at most
WEB_MAX_CONCURRENT_REQUESTS requests into Django at once; the rest wait here as coroutines on
the loop, which cost no thread, in arrival order. A request that waits WEB_QUEUE_TIMEOUT
seconds without a place answers 503 `overloaded` with Retry-After, so nothing queues without
limit. WebSockets never come here (they are routed apart), nor does the public health answer
(served from memory before this). WEB_MAX_CONCURRENT_REQUESTS=0 turns the bound off.

A bound alone left the loop at p99 61-164 ms in that burst: the requests let in still cost
threads and GIL time only to be refused 503 `rag_busy`. fortune_project/asgi.py therefore puts
rag/busy.py in front of this bound, so a search past SEARCH_CONCURRENCY is refused on the loop
without entering Django; and embeddings run at a lower CPU priority (EMBEDDINGS_NICE,
rag/embeddings.py), so the loop wins the CPU.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable

from django.conf import settings

from fortune_project.errors import error_body

ASGIApp = Callable[..., Awaitable[None]]
RETRY_AFTER = "1"  # a place frees up as soon as any request ends


def bounded(app: ASGIApp) -> ASGIApp:
    limit = int(settings.WEB_MAX_CONCURRENT_REQUESTS)
    if limit <= 0:
        return app
    places = asyncio.Semaphore(limit)  # bound to the server's loop at the first wait (Python >= 3.10)

    async def admitted(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(float(settings.WEB_QUEUE_TIMEOUT)):
                await places.acquire()
        except TimeoutError:
            await overloaded(scope, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            places.release()

    return admitted


async def overloaded(scope: dict, send: Callable) -> None:
    """503 `overloaded`: JSON under /api/ (the contract's error shape), plain text elsewhere."""
    message = "The server is busy; try again in a moment."
    if scope["path"].startswith("/api/"):
        body, kind = json.dumps(error_body("overloaded", message)).encode(), b"application/json"
    else:
        body, kind = message.encode(), b"text/plain; charset=utf-8"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", RETRY_AFTER.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
