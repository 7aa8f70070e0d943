"""The retrieval rungs of the degradation ladder, on a real (empty or missing) Chroma store."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.deadlines import Deadline
from rag import chroma_client, embeddings, router
from rag.retrieval import retrieve
from tests.support import chroma

chroma_store = chroma.chroma_store


def deadline() -> Deadline:
    return Deadline(timezone.now() + timedelta(seconds=30))


def test_an_unreachable_index_degrades_to_database_text(poem, chroma_store):
    result = retrieve("Will my new job go well?", poem, deadline())
    assert result.degraded_reasons == ["rag_unavailable"]
    assert result.passages[0].topic == "career"


def test_three_failed_retrievals_open_the_rag_and_chromadb_breakers(poem, chroma_store):
    for _ in range(3):
        retrieve("Will my new job go well?", poem, deadline())
    assert get_breaker("rag").state() == "open"
    assert get_breaker("chromadb").state() == "open"


@pytest.fixture
def warm_router():
    """The embedding model and the router loaded, as in a worker that has answered before."""
    router.route_vector(embeddings.embed_one("warm up", timeout=60), timeout=120)


@pytest.mark.parametrize("name", ["rag", "chromadb"])
def test_an_open_breaker_skips_chroma_at_once(poem, chroma_store, name, warm_router, monkeypatch):
    monkeypatch.setattr(chroma_client, "_connect", lambda writing: pytest.fail("Chroma was called"))
    get_breaker(name).force_open(who="bob")
    started = time.monotonic()
    result = retrieve("Will my new job go well?", poem, deadline())
    assert time.monotonic() - started < 5  # no Chroma call, no timeout waited (typically ~50 ms)
    assert result.degraded_reasons == ["rag_breaker_open"]
    assert result.passages[0].topic == "career"


@pytest.mark.parametrize("name", ["rag", "chromadb"])
def test_with_a_breaker_open_the_router_still_ranks_the_poems_text(poem, chroma_store, name, warm_router):
    get_breaker(name).force_open(who="bob")
    result = retrieve("She left me last month. Will she come back?", poem, deadline())
    assert result.degraded_reasons == ["rag_breaker_open"]
    assert [p.topic for p in result.passages[:1]] == [result.topics[0].topic] == ["love"]


def test_with_a_remote_embeddings_endpoint_an_open_rag_breaker_routes_by_topic_words(poem, chroma_store, settings):
    settings.EMBEDDINGS, settings.EMBEDDINGS_BASE_URL = "openai", "http://127.0.0.1:9/v1"
    get_breaker("rag").force_open(who="bob")
    result = retrieve("Will my new job go well?", poem, deadline())
    assert result.degraded_reasons == ["rag_breaker_open"]
    assert (result.passages[0].topic, [t.topic for t in result.topics]) == ("career", ["career"])


def test_with_both_llm_and_rag_down_the_reading_comes_from_the_poem_alone(alice, poem, chroma_store, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    get_breaker("rag").force_open(who="bob")
    get_breaker("llm").force_open(who="bob")
    task = submit_question(alice, Question("Will my new job go well?"))[0]
    assert run_fortune_task(str(task.id)) == "succeeded"
    task.refresh_from_db()
    assert task.result["degraded_reasons"] == ["rag_breaker_open", "llm_breaker_open"]
    assert poem.advice["career"] in task.result["interpretation"]
    assert task.result["topics"][0]["topic"] == "career"
