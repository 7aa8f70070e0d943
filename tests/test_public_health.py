from rest_framework.test import APIClient

from monitoring.probes import Probe

URL = "/api/v1/async-chat/health"


def test_it_is_public_and_reports_every_component(db):
    response = APIClient().get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body["components"]) == {"database", "cache", "workers", "rag", "llm"}
    assert set(body["breakers"]) == {"rag", "llm", "chromadb"}


def test_it_is_degraded_without_a_live_cluster(db):
    body = APIClient().get(URL).json()
    assert body["status"] == "degraded"
    assert body["components"]["workers"]["status"] == "degraded"


def test_it_answers_503_down_when_the_database_fails(db, monkeypatch):
    monkeypatch.setattr("monitoring.probes.database", lambda: Probe("down", "OperationalError"))
    response = APIClient().get(URL)
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert int(response["Retry-After"]) > 0
