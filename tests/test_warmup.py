"""A new worker warms up (chat/warmup.py) before it records itself idle, and a warm-up that
fails never stops the worker from starting."""

import httpx
import openai
import pytest
from django.core.cache import cache
from django_q.signals import post_spawn

from chat import warmup, workers
from rag.embeddings import EmbeddingError
from tests.support.stat import HOST

pytestmark = pytest.mark.django_db


def my_record() -> dict | None:
    import os

    return cache.get(workers.worker_key(HOST, os.getpid()))


def test_a_spawned_worker_warms_up_before_it_shows_idle(monkeypatch):
    seen = []
    monkeypatch.setattr(warmup, "warm_up", lambda: seen.append(my_record()) or 0.0)
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert seen == [None]  # nothing recorded while it warmed up
    assert my_record()["state"] == "idle"


def test_the_warm_up_loads_the_model_and_the_router_and_queries_the_index(monkeypatch):
    calls = []
    monkeypatch.setattr(warmup.embeddings, "embed_one", lambda text, timeout: calls.append("embed") or [0.0] * 384)
    real_route = warmup.router.route_vector
    monkeypatch.setattr(warmup.router, "route_vector", lambda v, timeout: calls.append("route") or real_route(v, 5))
    monkeypatch.setattr(warmup.chroma_client, "query", lambda *args, **kwargs: calls.append("query") or [])
    warmup.warm_up()
    assert calls == ["embed", "route", "query"]


def test_a_failing_warm_up_is_logged_and_the_worker_still_starts(monkeypatch, caplog):
    def broken(text, timeout):
        raise EmbeddingError("no model files")

    monkeypatch.setattr(warmup.embeddings, "embed_one", broken)
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert "warm-up incomplete" in caplog.text
    assert my_record()["state"] == "idle"


def test_the_llm_client_warm_up_sends_nothing_to_the_llm(settings, monkeypatch):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    sent_to = []

    class Client:
        def with_options(self, base_url, **options):
            sent_to.append(base_url)
            return self

        @property
        def chat(self):  # as a refused connection ends the call
            raise openai.APIConnectionError(request=httpx.Request("POST", sent_to[-1]))

    monkeypatch.setattr("chat.llm.client", lambda: Client())
    warmup._prepare_llm_client()
    assert len(sent_to) == 1 and sent_to[0].startswith("http://127.0.0.1:") and sent_to[0] != settings.LLM_BASE_URL
