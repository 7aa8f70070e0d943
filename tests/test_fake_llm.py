"""`manage.py fake_llm`: an OpenAI-compatible server whose failures can be switched while it runs."""

import json
import math
import urllib.error
import urllib.request

import openai
import pytest

from monitoring.drills.fake_llm import READING, split_words
from tests.support.fake_llm import FakeLLM

pytest_plugins = ["tests.support.fake_llm"]  # the fake_llm fixtures

pytestmark = pytest.mark.slow


def post(fake: FakeLLM, path: str, body: dict, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(fake.base_url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sdk(fake: FakeLLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="none", max_retries=0, timeout=5)


def test_it_lists_its_model(fake_llm):
    assert [m.id for m in sdk(fake_llm).models.list()] == ["fake-llm"]


def test_it_answers_a_whole_completion(fake_llm):
    reply = sdk(fake_llm).chat.completions.create(model="fake-llm", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == READING


def test_it_streams_a_reading_in_several_chunks_in_openais_format(fake_llm):
    stream = sdk(fake_llm).chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(chunks) >= 5
    assert "".join(chunks) == READING


def test_its_embeddings_are_deterministic_unit_vectors(fake_llm):
    first = sdk(fake_llm).embeddings.create(model="fake-llm", input=["a lantern", "a boat"])
    again = sdk(fake_llm).embeddings.create(model="fake-llm", input="a lantern")
    vectors = [d.embedding for d in first.data]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert vectors[0] == again.data[0].embedding
    assert vectors[0] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[0]), 1.0, rel_tol=1e-9)


def test_it_counts_the_calls_it_received(fake_llm):
    for _ in range(2):
        post(fake_llm, "/chat/completions", {"messages": []})
    post(fake_llm, "/embeddings", {"input": "x"})
    assert fake_llm.stats()["calls"] == {"chat": 2, "embeddings": 1}


def test_it_remembers_the_last_request_for_inspection(fake_llm):
    post(fake_llm, "/chat/completions", {"messages": [{"role": "user", "content": "my question"}]})
    assert fake_llm.stats()["last_request"]["messages"][0]["content"] == "my question"


def test_error_mode_answers_500(fake_llm):
    fake_llm.set_mode("error")
    status, body = post(fake_llm, "/chat/completions", {"messages": []})
    assert status == 500
    assert json.loads(body)["error"]["type"] == "server_error"


def test_flaky_mode_alternates_500_and_ok(fake_llm):
    fake_llm.set_mode("flaky")
    statuses = [post(fake_llm, "/chat/completions", {"messages": []})[0] for _ in range(4)]
    assert statuses == [500, 200, 500, 200]


def test_garbage_mode_answers_invalid_json(fake_llm):
    fake_llm.set_mode("garbage")
    status, body = post(fake_llm, "/chat/completions", {"messages": []})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_raw_embeddings_come_back_reversed_and_scaled_and_garbage_ones_are_not_vectors(fake_llm):
    ok = json.loads(post(fake_llm, "/embeddings", {"input": ["a", "b"]})[1])["data"]
    fake_llm.control(embeddings_mode="raw")
    raw = json.loads(post(fake_llm, "/embeddings", {"input": ["a", "b"]})[1])["data"]
    assert [row["index"] for row in raw] == [1, 0]
    assert raw[1]["embedding"] == [2 * v for v in ok[0]["embedding"]]
    assert raw[0]["embedding"] == [3 * v for v in ok[1]["embedding"]]
    fake_llm.control(embeddings_mode="garbage")
    status, body = post(fake_llm, "/embeddings", {"input": ["a"]})
    assert status == 200
    assert json.loads(body)["data"][0]["embedding"] == "not a vector"


def test_hang_mode_never_answers(fake_llm):
    fake_llm.set_mode("hang")
    with pytest.raises(TimeoutError):
        post(fake_llm, "/chat/completions", {"messages": []}, timeout=0.5)
    assert fake_llm.calls("chat") == 1


def test_the_mode_can_be_switched_back_while_it_runs(fake_llm):
    fake_llm.set_mode("error")
    fake_llm.set_mode("ok")
    assert post(fake_llm, "/chat/completions", {"messages": []})[0] == 200


def test_it_rejects_an_unknown_mode(fake_llm):
    with pytest.raises(urllib.error.HTTPError) as error:
        fake_llm.set_mode("explode")
    assert error.value.code == 400
    assert fake_llm.stats()["mode"] == "ok"


def test_split_words_keeps_the_text_whole():
    assert "".join(split_words(READING, 10)) == READING
    assert len(split_words(READING, 10)) >= 8
