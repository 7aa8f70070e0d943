"""GET /api/v1/monitoring/circuit-breakers and the POST actions: staff only, recorded with who."""

from uuid import uuid4

import pytest

from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.models import BreakerEvent

URL = "/api/v1/monitoring/circuit-breakers"
CONTRACT_FIELDS = {
    "name",
    "state",
    "failures",
    "failure_threshold",
    "recovery_timeout",
    "opened_at",
    "retry_at",
    "last_failure",
    "last_change",
}


@pytest.fixture(autouse=True)
def fresh_breakers(settings, db):
    settings.BREAKER_KEY_PREFIX = f"test-{uuid4().hex[:8]}"


def open_llm() -> None:
    breaker = get_breaker("llm")
    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(ConnectionError):
            breaker.call(_refused)
    assert breaker.state() == "open"


def _refused():
    raise ConnectionError("refused")


def test_staff_see_every_breaker_with_the_contract_fields(as_bob):
    response = as_bob.get(URL)

    assert response.status_code == 200
    assert [b["name"] for b in response.json()] == ["rag", "llm", "chromadb"]
    assert all(CONTRACT_FIELDS <= set(b) for b in response.json())
    assert {b["name"]: (b["failure_threshold"], b["recovery_timeout"]) for b in response.json()} == {
        "rag": (3, 30_000),  # durations in ms, as everywhere in the API
        "llm": (5, 60_000),
        "chromadb": (3, 45_000),
    }


def test_an_open_breaker_shows_open_with_its_times(as_bob):
    open_llm()

    llm = next(b for b in as_bob.get(URL).json() if b["name"] == "llm")

    assert (llm["state"], llm["failures"]) == ("open", 5)
    assert llm["opened_at"] and llm["retry_at"] and llm["last_failure"] and llm["last_change"]


def test_a_seeker_is_forbidden(as_alice):
    response = as_alice.get(URL)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_without_credentials_the_answer_is_401(client):
    response = client.get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_reset_closes_it_at_once_and_records_bob(as_bob, bob):
    open_llm()

    response = as_bob.post(f"{URL}/llm/reset", {"reason": "vendor incident over"}, format="json")

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["state"]) == ("llm", "closed")
    assert get_breaker("llm").state() == "closed"
    event = BreakerEvent.objects.filter(name="llm").latest("id")
    assert (event.from_state, event.to_state, event.who, event.actor, event.reason) == (
        "open",
        "closed",
        "bob (api)",
        bob,
        "vendor incident over",
    )


def test_reset_without_a_body_works(as_bob):
    response = as_bob.post(f"{URL}/rag/reset")

    assert response.status_code == 200
    assert response.json()["state"] == "closed"
    assert BreakerEvent.objects.get(name="rag").reason == "manual reset"


def test_an_unknown_breaker_is_404_and_nothing_is_recorded(as_bob):
    response = as_bob.post(f"{URL}/nope/reset")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "nope" in response.json()["error"]["message"]
    assert not BreakerEvent.objects.exists()


def test_a_seeker_cannot_reset_and_nothing_changes(as_alice):
    open_llm()

    response = as_alice.post(f"{URL}/llm/reset")

    assert response.status_code == 403
    assert get_breaker("llm").state() == "open"


def test_anonymous_cannot_reset(client):
    assert client.post(f"{URL}/llm/reset").status_code == 401


def test_staff_can_force_open_and_disable(as_bob):
    forced = as_bob.post(f"{URL}/chromadb/force-open")
    disabled = as_bob.post(f"{URL}/rag/disable")

    assert (forced.status_code, forced.json()["state"], forced.json()["retry_at"]) == (200, "forced_open", None)
    assert (disabled.status_code, disabled.json()["state"]) == (200, "disabled")
    assert [b["state"] for b in as_bob.get(URL).json()] == ["disabled", "closed", "forced_open"]


def test_a_too_long_reason_is_invalid_input(as_bob):
    response = as_bob.post(f"{URL}/llm/reset", {"reason": "x" * 201}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_failing_cache_answers_503_on_reset(as_bob, settings):
    settings.CACHES = {**settings.CACHES, "broken": {"BACKEND": "tests.test_breakers.BrokenCache"}}
    settings.BREAKER_CACHE = "broken"

    response = as_bob.post(f"{URL}/llm/reset")
    listing = as_bob.get(URL)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "breaker_unavailable"
    assert response["Retry-After"]
    assert listing.status_code == 200
    assert all(b["cache"]["ok"] is False for b in listing.json())
