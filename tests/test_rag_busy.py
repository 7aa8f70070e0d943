"""While every search slot is taken, a search is refused on the event loop, before Django."""

import asyncio
import json

from rag import busy
from rag.retrieval import SEARCH_SLOTS
from rag.views import RAG_BUSY_MESSAGE

SEARCH = "/api/v1/async-chat/poems/search"


class Django:
    """Stands in for Django's ASGI app: answers 418, counting what reaches it."""

    def __init__(self):
        self.reached: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def get(app, path: str = SEARCH, method: str = "GET", kind: str = "http") -> tuple[int, dict, bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": kind, "path": path, "method": method, "headers": [], "query_string": b"q=love"}
    asyncio.run(app(scope, None, send))
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_mallorys_search_while_every_slot_embeds_is_refused_503_rag_busy_without_reaching_django(settings):
    settings.SEARCH_CONCURRENCY = 2
    django = Django()
    with SEARCH_SLOTS.acquire(), SEARCH_SLOTS.acquire():
        status, headers, body = get(busy.asgi(django))
        assert get(busy.asgi(django), method="HEAD")[2] == b""
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": {"code": "rag_busy", "message": RAG_BUSY_MESSAGE}}
    assert django.reached == []


def test_alices_search_with_a_slot_free_goes_to_the_view_as_before(settings):
    settings.SEARCH_CONCURRENCY = 2
    django = Django()
    with SEARCH_SLOTS.acquire():
        assert get(busy.asgi(django))[0] == 418
    assert django.reached == [SEARCH]


def test_other_requests_are_never_refused_for_a_busy_search(settings):
    settings.SEARCH_CONCURRENCY = 1
    django = Django()
    with SEARCH_SLOTS.acquire():
        assert get(busy.asgi(django), path="/api/v1/async-chat/poems")[0] == 418
        assert get(busy.asgi(django), method="POST")[0] == 418
    assert django.reached == ["/api/v1/async-chat/poems", SEARCH]


def test_only_search_concurrency_searches_are_let_into_django_at_once_the_rest_refused_on_arrival(settings):
    """Mallory's burst: two searches reach the view, the other 78 are refused before it, at once."""
    settings.SEARCH_CONCURRENCY = 2
    reached: list[str] = []

    async def slow_django(scope, receive, send) -> None:
        reached.append(scope["path"])
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    app = busy.asgi(slow_django)

    async def one() -> int:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await app({"type": "http", "path": SEARCH, "method": "GET", "headers": []}, None, send)
        return sent[0]["status"]

    async def burst() -> tuple[list[int], int]:
        statuses = await asyncio.gather(*(one() for _ in range(80)))
        return list(statuses), await one()  # after the burst: a place is free again

    statuses, later = asyncio.run(burst())
    assert sorted(statuses) == [200] * 2 + [503] * 78
    assert len(reached) == 3 and later == 200
