"""Every API body is parsed strictly: what Python's json lets through gets a 400 malformed_json,
and nothing is written."""

import pytest
from rest_framework.test import APIClient

from chat.models import Conversation, FortuneTask
from fortune_project.parsers import nesting_depth

URL = "/api/v1/async-chat/tasks"
TOKEN_URL = "/api/v1/auth/token"


def post_raw(client: APIClient, body: bytes, url: str = URL):
    return client.generic("POST", url, body, content_type="application/json")


def assert_malformed(response) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    "body",
    [
        b'{"question": "hi", "poem": 1e400}',
        b'{"question": "hi", "conversation": 1e400}',
        b'{"question": "hi", "poem": -1e400}',
        b'{"question": "hi", "poem": NaN}',
        b'{"question": "hi", "poem": Infinity}',
        b'{"question": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"question": 5}',
        b'{"question": ["hi"]}',
        b'{"question": "hi", "poem": true}',
        b'{"question": "hi", "poem": 5.0}',
        b'{"question": "hi", "poem": "1"}',
        b'{"question": "hi", "conversation": false}',
        b'{"question": "hi", "language": 1}',
        b'{"question": "hi", "temple": {"slug": "jade-harbor"}}',
    ],
)
def test_alice_gets_malformed_json_for_what_json_lets_through_and_nothing_is_written(as_alice, poem, body):
    assert_malformed(post_raw(as_alice, body))
    assert not FortuneTask.objects.exists()
    assert not Conversation.objects.exists()


def test_a_200kb_run_of_brackets_is_malformed_even_before_logging_in(db):
    body = b"[" * 200_000
    assert_malformed(post_raw(APIClient(), body, TOKEN_URL))


def test_signed_in_deep_nesting_is_malformed_too(as_alice):
    body = b'{"question": "hi", "extra": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert_malformed(post_raw(as_alice, body))


def test_moderate_nesting_is_still_fine(as_alice, poem):
    body = b'{"question": "Will my shop do well?", "extra": [[[[{"a": [1]}]]]]}'
    assert post_raw(as_alice, body).status_code == 202


def test_a_huge_id_is_simply_not_found(as_alice, poem):
    response = as_alice.post(URL, {"question": "hi", "poem": 10**30}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "poem" in response.json()["error"]["details"]


def test_the_token_endpoint_wants_strings(db):
    response = post_raw(APIClient(), b'{"username": "alice", "password": NaN}', TOKEN_URL)
    assert_malformed(response)


def test_depth_counting_skips_brackets_inside_strings():
    assert nesting_depth(b'{"a": "[[[[[[[[\\"]]]"}', 10) == 1
    assert nesting_depth(b"[[[]]]", 10) == 3
