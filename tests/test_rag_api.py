import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIRequestFactory, force_authenticate

from rag import chroma_client, embeddings, index
from rag.models import TOPICS
from rag.retrieval import SEARCH_SLOTS
from rag.views import PoemSearchView, SearchThrottle
from tests.support import chroma
from tests.support.chroma import make_corpus
from tests.support.processes import free_port, wait_until

chroma_store = chroma.chroma_store  # shared fixtures, found by these names

URL = "/api/v1/async-chat/poems"


@pytest.fixture
def corpus(db):
    return make_corpus(("jade-harbor", "cloud-peak"), poems=3)


@pytest.fixture
def indexed(chroma_store, corpus):
    index.reindex_all()
    return corpus


def test_it_lists_poems_page_by_page(as_alice, corpus, monkeypatch):
    # DRF reads PAGE_SIZE into the paginator class once, at import: patch the class itself.
    monkeypatch.setattr(PageNumberPagination, "page_size", 4)
    body = as_alice.get(URL).json()
    assert body["count"] == 6
    assert [(p["temple"], p["number"]) for p in body["results"]] == [
        ("cloud-peak", 1),
        ("cloud-peak", 2),
        ("cloud-peak", 3),
        ("jade-harbor", 1),
    ]
    assert body["next"].endswith("?page=2")


def test_it_lists_one_temples_poems(as_alice, corpus):
    body = as_alice.get(URL, {"temple": "jade-harbor"}).json()
    assert body["count"] == 3
    assert {p["temple"] for p in body["results"]} == {"jade-harbor"}


def test_an_unknown_temple_is_a_400_naming_the_field(as_alice, corpus):
    response = as_alice.get(URL, {"temple": "atlantis"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert response.json()["error"]["details"] == {"temple": ["No temple with slug atlantis."]}


def test_it_shows_a_poem_with_all_its_fields_and_advice(as_alice, poem):
    body = as_alice.get(f"{URL}/{poem.id}").json()
    assert body["id"] == poem.id
    assert (body["temple"], body["temple_name"], body["number"]) == ("jade-harbor", "Jade Harbor Temple", 1)
    assert (body["title"], body["rank"], body["language"]) == (poem.title, "blessing", "en")
    assert (body["verse"], body["meaning"]) == (poem.verse, poem.meaning)
    assert set(body["advice"]) == set(TOPICS)


def test_a_missing_poem_is_a_404_in_json(as_alice, db):
    response = as_alice.get(f"{URL}/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_poems_are_not_for_anonymous_callers(client, poem):
    for path in (URL, f"{URL}/{poem.id}", f"{URL}/search?q=love"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


def test_the_poem_api_is_read_only(as_alice, poem):
    assert as_alice.post(URL, {"title": "x"}, format="json").status_code == 405
    assert as_alice.delete(f"{URL}/{poem.id}").status_code == 405


def test_search_returns_ranked_passages(as_alice, indexed):
    response = as_alice.get(f"{URL}/search", {"q": "My wallet went missing on the bus", "k": 3})
    assert response.status_code == 200
    passages = response.json()
    assert len(passages) == 3
    assert set(passages[0]) == {"poem", "topic", "text", "score"}
    assert [p["topic"] for p in passages] == ["lost_items"] * 3
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_search_keeps_to_the_temple_asked_for(as_alice, indexed):
    cloud_peak = {p.id for p in indexed if p.temple.slug == "cloud-peak"}
    passages = as_alice.get(f"{URL}/search", {"q": "marriage", "temple": "cloud-peak", "k": 20}).json()
    assert len(passages) == 20
    assert {p["poem"] for p in passages} <= cloud_peak


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "q"), ({"q": "  "}, "q"), ({"q": "love", "k": "0"}, "k"), ({"q": "love", "k": "lots"}, "k")],
)
def test_a_bad_search_is_a_400_naming_the_field(as_alice, db, params, field):
    response = as_alice.get(f"{URL}/search", params)
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == [field]


def test_a_search_in_an_unknown_temple_is_a_400(as_alice, corpus):
    response = as_alice.get(f"{URL}/search", {"q": "love", "temple": "atlantis"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"temple": ["No temple with slug atlantis."]}


def test_search_answers_503_rag_unavailable_when_chroma_is_down(as_alice, corpus, settings):
    settings.CHROMA_URL = f"http://127.0.0.1:{free_port()}"
    chroma_client.reset_connection()
    response = as_alice.get(f"{URL}/search", {"q": "love"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rag_unavailable"
    assert response["Retry-After"]
    chroma_client.reset_connection()


# --- Search under load: the per-user throttle and the per-process cap ---------------------------


def test_search_throttles_each_user_with_429_and_retry_after(as_alice, as_mallory, indexed, monkeypatch):
    monkeypatch.setattr(SearchThrottle, "rate", "2/min", raising=False)
    assert [as_alice.get(f"{URL}/search", {"q": "love"}).status_code for _ in range(2)] == [200, 200]
    response = as_alice.get(f"{URL}/search", {"q": "love"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert as_mallory.get(f"{URL}/search", {"q": "love"}).status_code == 200


def test_search_past_the_cap_answers_503_rag_busy_at_once(as_alice, indexed, settings):
    settings.SEARCH_CONCURRENCY = 1
    with SEARCH_SLOTS.acquire():  # another search is embedding
        started = time.monotonic()
        response = as_alice.get(f"{URL}/search", {"q": "love"})
        assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rag_busy"
    assert response["Retry-After"] == "1"
    assert as_alice.get(f"{URL}/search", {"q": "love"}).status_code == 200  # the slot is free again


def test_a_search_gives_its_slot_back_whether_it_succeeds_or_fails(as_alice, indexed, settings):
    assert as_alice.get(f"{URL}/search", {"q": "love"}).status_code == 200
    settings.CHROMA_URL = f"http://127.0.0.1:{free_port()}"
    chroma_client.reset_connection()
    assert as_alice.get(f"{URL}/search", {"q": "love"}).status_code == 503
    chroma_client.reset_connection()
    assert SEARCH_SLOTS.active == 0


class GatedEmbedder:
    """Embeds only once `go` is set, counting how many embed at once."""

    model_id = "gated"

    def __init__(self):
        self.go, self.lock, self.running, self.peak = threading.Event(), threading.Lock(), 0, 0

    def embed(self, texts, timeout):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.go.wait(30)
        with self.lock:
            self.running -= 1
        return [[1.0] + [0.0] * 383 for _ in texts]


@pytest.fixture
def gated(monkeypatch):
    embedder = GatedEmbedder()
    monkeypatch.setattr(embeddings, "get_embedder", lambda: embedder)
    monkeypatch.setattr(chroma_client, "query", lambda *args, **kwargs: [])
    yield embedder
    embedder.go.set()


def test_an_embedding_abandoned_at_its_timeout_keeps_its_slot_until_it_ends(as_alice, db, settings, gated):
    settings.SEARCH_CONCURRENCY, settings.RAG_SEARCH_TIMEOUT = 1, 0.2
    assert as_alice.get(f"{URL}/search", {"q": "love"}).json()["error"]["code"] == "rag_unavailable"
    # The embedding still runs (and uses the CPU) after the request gave up on it.
    assert as_alice.get(f"{URL}/search", {"q": "love"}).json()["error"]["code"] == "rag_busy"
    gated.go.set()
    wait_until(lambda: SEARCH_SLOTS.active == 0, 5, what="the abandoned embedding to end")
    assert as_alice.get(f"{URL}/search", {"q": "love"}).status_code == 200


def test_a_burst_of_long_searches_embeds_at_most_the_cap_at_once_and_refuses_the_rest_at_once(
    alice, settings, gated, monkeypatch
):
    """Searches run in threads, as Django runs sync views under ASGI. While two embed, the other
    eighteen are answered 503 rag_busy; then the two answer 200."""
    settings.SEARCH_CONCURRENCY, settings.RAG_SEARCH_TIMEOUT = 2, 30
    monkeypatch.setattr(SearchThrottle, "allow_request", lambda self, request, view: True)
    factory, view = APIRequestFactory(), PoemSearchView.as_view()

    def search() -> tuple[int, dict | list, str | None]:
        request = factory.get(f"{URL}/search", {"q": "Will my long journey end well? " * 64})
        force_authenticate(request, alice)
        response = view(request).render()
        return response.status_code, json.loads(response.content), response.get("Retry-After")

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(search) for _ in range(20)]
        wait_until(lambda: sum(f.done() for f in futures) >= 18, 10, what="18 searches to be refused")
        early = [f for f in futures if f.done()]
        gated.go.set()
        refused = [f.result() for f in early]
        answered = [f.result(timeout=10) for f in futures if f not in early]
    assert [(status, body["error"]["code"], retry) for status, body, retry in refused] == [(503, "rag_busy", "1")] * 18
    assert [(status, body) for status, body, _ in answered] == [(200, [])] * 2
    assert gated.peak == 2


def test_search_is_a_sync_view_so_its_embedding_never_runs_on_the_event_loop():
    assert not PoemSearchView.view_is_async
