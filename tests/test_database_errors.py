"""A database that cannot be reached is a 503 worth retrying; a schema or data problem is a
500 `internal_error` logged with its cause, so the operator is not sent chasing an outage."""

import logging

import pytest
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
)
from django.test import RequestFactory

from fortune_project.errors import ApiErrorMiddleware, is_database_outage

METRICS = "/api/v1/async-chat/metrics"

OUTAGES = [
    OperationalError("database is locked"),
    OperationalError("unable to open database file"),
    OperationalError('connection to server at "10.0.0.5", port 5432 failed: Connection refused'),
    OperationalError("server closed the connection unexpectedly"),
    InterfaceError("connection already closed"),
]
NOT_OUTAGES = [
    OperationalError("no such table: chat_fortunetask"),
    OperationalError("no such column: chat_fortunetask.topics"),
    OperationalError("table chat_fortunetask has no column named topics"),
    ProgrammingError('relation "chat_fortunetask" does not exist'),
    IntegrityError("UNIQUE constraint failed: chat_fortunetask.idempotency_key"),
    DataError("value too long for type character varying(200)"),
    DatabaseError("Save with update_fields did not affect any rows."),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=str)
def test_a_lost_connection_or_a_lock_is_an_outage(exc):
    assert is_database_outage(exc)


@pytest.mark.parametrize("exc", NOT_OUTAGES, ids=str)
def test_a_schema_or_data_problem_is_not(exc):
    assert not is_database_outage(exc)


def raising(exc):
    def view(*args, **kwargs):
        raise exc

    return view


@pytest.mark.parametrize("exc", NOT_OUTAGES[:5], ids=str)
def test_the_api_answers_a_schema_or_data_problem_with_a_logged_500(as_alice, monkeypatch, caplog, exc):
    monkeypatch.setattr("chat.views.user_metrics", raising(exc))
    as_alice.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="fortune_project.errors"):
        response = as_alice.get(METRICS)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "Retry-After" not in response
    [record] = [r for r in caplog.records if r.name == "fortune_project.errors"]
    assert record.exc_info[1] is exc  # the cause, with its traceback


@pytest.mark.parametrize("exc", OUTAGES[-2:], ids=str)
def test_the_api_answers_an_outage_with_503_database_unavailable(as_alice, monkeypatch, exc):
    monkeypatch.setattr("chat.views.user_metrics", raising(exc))
    response = as_alice.get(METRICS)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"]


def test_a_real_missing_table_is_a_500_not_an_outage(as_alice, caplog):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE chat_fortunetask")  # rolled back with the test's transaction
    as_alice.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="fortune_project.errors"):
        response = as_alice.get("/api/v1/async-chat/tasks")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "chat_fortunetask" in caplog.text


@pytest.mark.parametrize(("exc", "status"), [(OUTAGES[0], 503), (NOT_OUTAGES[0], 500)], ids=str)
def test_the_middleware_judges_errors_from_outside_drf_alike(exc, status):
    middleware = ApiErrorMiddleware(lambda request: None)
    response = middleware.process_exception(RequestFactory().get("/api/v1/anything"), exc)
    assert response is not None and response.status_code == status
