from datetime import timedelta

from django.utils import timezone

from chat.models import FortuneTask
from chat.pipeline import run_fortune_task
from chat.stats import percentile


def ask(client):
    return client.post("/api/v1/async-chat/tasks", {"question": "Will my job go well?"}, format="json").json()["id"]


def test_it_counts_only_the_users_own_tasks(as_alice, as_mallory, poem):
    run_fortune_task(ask(as_alice))
    ask(as_alice)
    ask(as_mallory)
    body = as_alice.get("/api/v1/async-chat/metrics").json()
    day = body["last_24h"]
    assert day["total"] == 2
    assert day["by_status"]["succeeded"] == 1
    assert day["by_status"]["queued"] == 1
    assert day["success_rate"] == 1.0
    assert day["degraded"] == 1  # no LLM configured in tests: the offline reader answered
    assert day["total_ms_p50"] is not None


def test_old_tasks_count_for_all_time_only(as_alice, poem):
    task_id = ask(as_alice)
    FortuneTask.objects.filter(id=task_id).update(submitted_at=timezone.now() - timedelta(days=2))
    body = as_alice.get("/api/v1/async-chat/metrics").json()
    assert (body["last_24h"]["total"], body["all_time"]["total"]) == (0, 1)


def test_percentiles_use_the_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
