"""Bad input never yields a 500 or an HTML page."""

import pytest

URL = "/api/v1/async-chat/tasks"


def raw(client, body: bytes, content_type="application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def assert_json_error(response, status: int, code: str | None = None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


@pytest.mark.parametrize(
    "body",
    [b"", b"{bad json", b"\xff\xfe\x00garbage", b'{"question": "a\x00b"}', b"null", b"[1, 2]", b'"just a string"'],
)
def test_malformed_bodies_get_a_json_400(as_alice, body):
    response = raw(as_alice, body)
    assert_json_error(response, 400)


def test_a_10kb_question_is_refused_by_length(as_alice):
    response = as_alice.post(URL, {"question": "x" * 10_000}, format="json")
    assert_json_error(response, 400, "invalid_input")
    assert "question" in response.json()["error"]["details"]


def test_an_oversized_body_gets_a_json_error(as_alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = raw(as_alice, b'{"question": "' + b"x" * 5000 + b'"}')
    assert_json_error(response, 413, "payload_too_large")


def test_a_non_json_content_type_gets_415_in_json(as_alice):
    response = raw(as_alice, b"question=hi", content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 415, "unsupported_media_type")


def test_a_wrong_method_gets_405_in_json(as_alice):
    response = as_alice.delete(URL)
    assert_json_error(response, 405, "method_not_allowed")


def test_an_unknown_api_url_gets_404_in_json(as_alice):
    assert_json_error(as_alice.get("/api/v1/async-chat/nothing-here"), 404, "not_found")


def test_a_disallowed_host_gets_a_json_400(as_alice):
    response = as_alice.get("/api/v1/async-chat/tasks", HTTP_HOST="evil.example")
    assert_json_error(response, 400, "bad_request")


def test_a_crash_gets_a_json_500_without_a_traceback(as_alice, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("chat.views.user_metrics", crash)
    as_alice.raise_request_exception = False
    response = as_alice.get("/api/v1/async-chat/metrics")
    assert_json_error(response, 500, "internal_error")
    assert "secret" not in response.content.decode()


def test_a_database_outage_gets_503_database_unavailable(as_alice, monkeypatch):
    from django.db import OperationalError

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("chat.views.user_metrics", locked)
    response = as_alice.get("/api/v1/async-chat/metrics")
    assert_json_error(response, 503, "database_unavailable")
    assert response["Retry-After"]


def test_a_redis_outage_gets_503_cache_unavailable_not_a_500(as_alice, monkeypatch):
    import redis

    def unreachable(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr("chat.views.user_metrics", unreachable)
    response = as_alice.get("/api/v1/async-chat/metrics")
    assert_json_error(response, 503, "cache_unavailable")
    assert response["Retry-After"]
    assert "6379" not in response.content.decode()


def test_a_redis_outage_outside_a_view_is_a_json_503_too(rf):
    import redis

    from fortune_project.errors import ApiErrorMiddleware

    middleware = ApiErrorMiddleware(lambda request: None)
    response = middleware.process_exception(rf.get("/api/v1/async-chat/tasks"), redis.exceptions.TimeoutError())
    assert response is not None and response.status_code == 503
    assert response["Retry-After"]
    assert b"cache_unavailable" in response.content
