"""One answer to "which workers are alive": /health/, the public summary, worker-pool and the
alerts read the same liveness, before a cluster is killed, while it is gone and after its restart."""


import pytest
from django_q.status import Stat

from chat import workers
from rag import chroma_client
from tests.support.stat import HOST, fake_stat


@pytest.fixture
def heartbeats(monkeypatch) -> list:
    """The clusters whose Django-Q2 heartbeat is alive; tests change the list as clusters die."""
    live: list = []
    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: list(live)))
    monkeypatch.setattr(chroma_client, "heartbeat", lambda timeout: 1)
    return live


def what_each_view_says(as_bob, client) -> dict[str, object]:
    health = client.get("/health/?format=json").json()
    public = as_bob.get("/api/v1/async-chat/health").json()["components"]["workers"]
    pool = as_bob.get("/api/v1/monitoring/worker-pool").json()
    alerts = {a["code"]: a["message"] for a in as_bob.get("/api/v1/monitoring/alerts").json()}
    return {
        "health": health["TaskCluster()"],
        "public": public["detail"],
        "pool": len(pool["workers"]),
        "alerts": alerts.get("no_workers") or alerts.get("workers_missing"),
    }


def test_every_view_agrees_on_live_workers_across_a_kill_and_restart(transactional_db, bob, as_bob, client, heartbeats):
    heartbeats.append(fake_stat(11, 12, 13, cluster_id="first"))
    workers.record("busy", task="t1", pid=12, host=HOST)
    assert what_each_view_says(as_bob, client) == {
        "health": "OK",
        "public": "1 cluster(s), 3 worker(s)",
        "pool": 3,
        "alerts": None,
    }

    heartbeats.clear()  # SIGKILLed: its heartbeat is gone, its busy record is not
    assert what_each_view_says(as_bob, client) == {
        "health": "Unavailable: no live task cluster",
        "public": "no live task cluster",
        "pool": 0,
        "alerts": "No live task cluster (no live task cluster): queued tasks will not run.",
    }

    heartbeats.append(fake_stat(21, 22, cluster_id="second"))  # restarted, one worker still starting
    assert what_each_view_says(as_bob, client) == {
        "health": "Warning: 2 of 3 workers alive",
        "public": "2 of 3 workers alive",
        "pool": 2,
        "alerts": "Only 2 of 3 workers alive.",
    }


def test_an_unreadable_cluster_state_is_no_live_worker_everywhere(transactional_db, bob, as_bob, client, monkeypatch):
    def unreadable(broker=None):
        raise ConnectionError("cache refused")

    monkeypatch.setattr(Stat, "get_all", staticmethod(unreadable))
    monkeypatch.setattr(chroma_client, "heartbeat", lambda timeout: 1)
    said = what_each_view_says(as_bob, client)
    assert said["pool"] == 0
    assert said["health"] == "Unavailable: cluster state unreadable: ConnectionError"
    assert said["public"] == "cluster state unreadable: ConnectionError"
    assert "cluster state unreadable" in said["alerts"]
