"""The retrieval rungs of the degradation ladder, on a real (empty or missing) Chroma store."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.deadlines import Deadline
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


@pytest.mark.parametrize("name", ["rag", "chromadb"])
def test_an_open_breaker_skips_chroma_at_once(poem, chroma_store, name):
    get_breaker(name).force_open(who="bob")
    started = time.monotonic()
    result = retrieve("Will my new job go well?", poem, deadline())
    assert time.monotonic() - started < 0.5
    assert result.degraded_reasons == ["rag_breaker_open"]
    assert result.passages[0].topic == "career"


def test_with_both_llm_and_rag_down_the_reading_comes_from_the_poem_alone(alice, poem, chroma_store, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    get_breaker("rag").force_open(who="bob")
    get_breaker("llm").force_open(who="bob")
    task = submit_question(alice, Question("Will my new job go well?"))[0]
    assert run_fortune_task(str(task.id)) == "succeeded"
    task.refresh_from_db()
    assert task.result["degraded_reasons"] == ["rag_breaker_open", "llm_breaker_open"]
    assert poem.advice["career"] in task.result["interpretation"]
