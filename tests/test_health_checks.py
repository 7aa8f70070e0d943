"""django-health-check at /health/: every check up, then each dependency down on its own."""


import pytest
from django.core.cache import caches
from django_q.status import Stat
from health_check.exceptions import ServiceUnavailable

from monitoring.health_checks import ChromaDB
from monitoring.probes import Probe
from rag import chroma_client
from tests.support.stat import fake_stat

CHECKS = {
    "database": "Database(alias='default')",
    "cache": "Cache(alias='default')",
    "schema": "Schema()",
    "chromadb": "ChromaDB()",
    "cluster": "TaskCluster()",
    "breakers": "Breakers()",
}


def cluster_of(workers: int) -> list:
    return [fake_stat(*range(11, 11 + workers))]


@pytest.fixture
def all_up(transactional_db, monkeypatch):
    """A live cluster with its 3 workers and a Chroma that answers its heartbeat."""
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: cluster_of(3)))
    monkeypatch.setattr(chroma_client, "heartbeat", lambda timeout: 1)


def health(client) -> tuple[int, dict]:
    response = client.get("/health/?format=json")
    return response.status_code, response.json()


def failing(body: dict) -> dict[str, str]:
    names = {v: k for k, v in CHECKS.items()}
    return {names[check]: result for check, result in body.items() if result != "OK"}


def test_all_checks_pass_with_200(client, all_up):
    status, body = health(client)
    assert (status, set(body)) == (200, set(CHECKS.values()))
    assert failing(body) == {}


@pytest.fixture
def database_down(monkeypatch):
    monkeypatch.setattr("monitoring.probes.database", lambda: Probe("down", "OperationalError"))


def test_the_database_down(client, all_up, database_down):
    status, body = health(client)
    assert (status, failing(body)) == (500, {"database": "Unavailable: OperationalError"})


def test_the_cache_down(client, all_up, monkeypatch):
    def refused(self, *args, **kwargs):
        raise ConnectionError("cache refused")

    monkeypatch.setattr(type(caches["default"]), "get", refused)
    status, body = health(client)
    assert (status, failing(body)) == (500, {"cache": "Unavailable: ConnectionError"})


def test_chromadb_down(client, all_up, monkeypatch):
    def refused(timeout):
        raise chroma_client.ChromaUnavailable("chromadb.heartbeat: connection refused")

    monkeypatch.setattr(chroma_client, "heartbeat", refused)
    status, body = health(client)
    assert (status, failing(body)) == (500, {"chromadb": "Unavailable: no heartbeat"})


def test_no_task_cluster(client, all_up, monkeypatch):
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: []))
    status, body = health(client)
    assert (status, failing(body)) == (500, {"cluster": "Unavailable: no live task cluster"})


def test_a_cluster_short_of_workers_is_a_warning(client, all_up, monkeypatch):
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: cluster_of(2)))
    status, body = health(client)
    assert (status, failing(body)) == (500, {"cluster": "Warning: 2 of 3 workers alive"})


def test_an_open_breaker_is_a_warning(client, all_up, monkeypatch):
    # Stubbed at the seam: the in-memory test database's shared-cache mode refuses concurrent
    # writes ("table is locked") that a file database in WAL mode allows, so with real state the
    # cache check, running beside this one in another thread, failed now and then.
    monkeypatch.setattr("monitoring.probes.breaker_states", lambda: {"llm": "forced_open", "rag": "closed"})
    status, body = health(client)
    assert (status, failing(body)) == (500, {"breakers": "Warning: llm forced_open"})


def test_readiness_stays_200_while_chroma_the_cluster_and_a_breaker_are_down(client, all_up, monkeypatch):
    monkeypatch.setattr(chroma_client, "heartbeat", lambda timeout: (_ for _ in ()).throw(OSError("down")))
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: []))
    monkeypatch.setattr("monitoring.probes.breaker_states", lambda: {"llm": "open"})
    response = client.get("/health/ready/?format=json")
    assert response.status_code == 200
    assert set(response.json()) == {CHECKS["database"], CHECKS["cache"], CHECKS["schema"]}


def test_readiness_fails_with_the_database(client, all_up, database_down):
    assert client.get("/health/ready/?format=json").status_code == 500


def test_the_chroma_check_gives_up_after_its_timeout(db, settings):
    settings.HEALTH_CHROMA_TIMEOUT = 0.2
    settings.CHROMA_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    chroma_client.reset_connection()
    with pytest.raises(ServiceUnavailable):
        ChromaDB().run()
    chroma_client.reset_connection()


def test_the_html_page_renders_for_a_browser(client, all_up):
    response = client.get("/health/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"ChromaDB" in response.content


def test_readiness_fails_while_the_schema_is_incomplete(client, all_up, monkeypatch):
    unfinished = Probe("down", "1 unapplied migration(s): run manage.py migrate")
    monkeypatch.setattr("monitoring.probes.schema", lambda: unfinished)
    response = client.get("/health/ready/?format=json")
    assert response.status_code == 500
    assert response.json()[CHECKS["schema"]] == f"Unavailable: {unfinished.detail}"
