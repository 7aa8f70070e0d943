from datetime import timedelta

import pytest
from django.utils import timezone

from chat import lifecycle
from chat.models import Conversation, FortuneTask, Message, Status
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question, withdraw
from chat.views import SubmitThrottle

URL = "/api/v1/async-chat/tasks"


def submit(client, body=None, **headers):
    return client.post(
        URL, body if body is not None else {"question": "Will my new shop do well?"}, format="json", **headers
    )


def test_it_accepts_a_question_with_202(as_alice, poem):
    response = submit(as_alice)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert set(body) == {"id", "status", "conversation", "submitted_at", "deadline", "links"}
    assert body["links"]["self"].endswith(f"/api/v1/async-chat/tasks/{body['id']}")
    assert body["links"]["websocket"] == f"/ws/async-chat/tasks/{body['id']}/"


@pytest.mark.django_db(transaction=True)
def test_it_answers_queued_even_when_a_fast_worker_has_already_failed_the_task(as_alice, poem, monkeypatch):
    def fast_failing_worker(task):
        FortuneTask.objects.filter(id=task.id).update(status=Status.FAILED, error={"code": "x", "message": "y"})
        return True  # enqueued

    monkeypatch.setattr("chat.submission.enqueue", fast_failing_worker)
    response = submit(as_alice)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_it_records_the_question_in_a_new_conversation(as_alice, alice, poem):
    body = submit(as_alice).json()
    message = Message.objects.get(conversation_id=body["conversation"])
    assert (message.role, message.content, str(message.task_id)) == ("user", "Will my new shop do well?", body["id"])


def test_it_enqueues_the_task_id_after_commit(as_alice, poem, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submit(as_alice)
    assert len(callbacks) == 1


def test_it_shows_a_finished_task(as_alice, poem):
    task_id = submit(as_alice).json()["id"]
    run_fortune_task(task_id)
    body = as_alice.get(f"{URL}/{task_id}").json()
    assert body["status"] == "succeeded"
    assert body["stage"] == "done"
    assert body["result"]["poem"]["id"] == poem.id
    assert set(body["timings"]) == {"queue_ms", "rag_ms", "llm_ms", "total_ms"}
    assert body["error"] is None


def test_an_idempotent_resubmission_returns_the_same_task(as_alice, poem):
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="abc-1").json()
    second = submit(as_alice, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert second.status_code == 202
    assert second.json()["id"] == first["id"]
    assert FortuneTask.objects.count() == 1


def test_the_same_key_from_another_user_makes_another_task(as_alice, as_mallory, poem):
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="abc-1").json()
    other = submit(as_mallory, HTTP_IDEMPOTENCY_KEY="abc-1").json()
    assert other["id"] != first["id"]


def test_a_key_older_than_a_day_makes_a_new_task(as_alice, poem):
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="abc-1").json()
    FortuneTask.objects.filter(id=first["id"]).update(
        submitted_at=timezone.now() - timedelta(hours=25), status=Status.SUCCEEDED
    )
    again = submit(as_alice, HTTP_IDEMPOTENCY_KEY="abc-1").json()
    assert again["id"] != first["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": "ok", "language": "fr"}, "language"),
        ({"question": "ok", "temple": "no-such-temple"}, "temple"),
        ({"question": "ok", "poem": 999999}, "poem"),
        ({"question": "ok", "conversation": 999999}, "conversation"),
        ({"question": "a\u0000b"}, "question"),
    ],
)
def test_it_rejects_invalid_input_with_field_details(as_alice, poem, body, field):
    response = submit(as_alice, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["details"]
    assert not FortuneTask.objects.exists()


def test_it_rejects_a_poem_from_another_temple(as_alice, poem):
    from rag.models import Temple

    Temple.objects.create(slug="cloud-peak", name="Cloud Peak Shrine")
    response = submit(as_alice, {"question": "ok", "temple": "cloud-peak", "poem": poem.id})
    assert response.status_code == 400
    assert "poem" in response.json()["error"]["details"]


def test_it_does_not_let_mallory_continue_alices_conversation(as_alice, as_mallory, poem):
    conversation = submit(as_alice).json()["conversation"]
    response = submit(as_mallory, {"question": "hi", "conversation": conversation})
    assert response.status_code == 400


def test_another_users_task_is_404(as_alice, as_mallory, poem):
    task_id = submit(as_alice).json()["id"]
    assert as_mallory.get(f"{URL}/{task_id}").status_code == 404
    assert as_mallory.post(f"{URL}/{task_id}/cancel").status_code == 404


def test_an_unknown_task_is_404_in_json(as_alice):
    response = as_alice.get(f"{URL}/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_lists_only_the_users_tasks_newest_first(as_alice, as_mallory, poem):
    older = submit(as_alice).json()["id"]
    newer = submit(as_alice).json()["id"]
    submit(as_mallory)
    body = as_alice.get(URL).json()
    assert body["count"] == 2
    assert [t["id"] for t in body["results"]] == [newer, older]
    assert {"next", "previous"} <= set(body)


def test_it_filters_the_list_by_status(as_alice, poem):
    done = submit(as_alice).json()["id"]
    submit(as_alice)
    run_fortune_task(done)
    body = as_alice.get(URL, {"status": "succeeded"}).json()
    assert [t["id"] for t in body["results"]] == [done]


def test_it_rejects_an_unknown_status_filter(as_alice):
    response = as_alice.get(URL, {"status": "bogus"})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["details"]


def test_it_cancels_a_queued_task(as_alice, poem):
    task_id = submit(as_alice).json()["id"]
    response = as_alice.post(f"{URL}/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert run_fortune_task(task_id) == "skipped"


def test_cancelling_a_terminal_task_is_409(as_alice, poem):
    task_id = submit(as_alice).json()["id"]
    run_fortune_task(task_id)
    response = as_alice.post(f"{URL}/{task_id}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "task_finished"


def test_reading_a_task_stuck_past_its_deadline_ends_it(as_alice, poem, settings):
    task_id = submit(as_alice).json()["id"]
    FortuneTask.objects.filter(id=task_id).update(deadline=timezone.now() - timedelta(seconds=settings.TASK_GRACE + 1))
    body = as_alice.get(f"{URL}/{task_id}").json()
    assert body["status"] == "timed_out"
    assert body["error"]["code"] == "deadline_exceeded"


def test_listing_ends_tasks_stuck_past_their_deadline(as_alice, poem, settings):
    task_id = submit(as_alice).json()["id"]
    FortuneTask.objects.filter(id=task_id).update(deadline=timezone.now() - timedelta(seconds=settings.TASK_GRACE + 1))
    assert as_alice.get(URL, {"status": "queued"}).json()["count"] == 0
    assert as_alice.get(URL).json()["results"][0]["status"] == "timed_out"


def test_it_throttles_with_429_and_retry_after(as_alice, poem, monkeypatch):
    monkeypatch.setattr(SubmitThrottle, "rate", "2/min", raising=False)
    assert submit(as_alice).status_code == 202
    assert submit(as_alice).status_code == 202
    response = submit(as_alice)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_a_429_carries_retry_after_even_when_the_throttle_cannot_say_when(as_alice, poem, monkeypatch):
    monkeypatch.setattr(SubmitThrottle, "rate", "1/min", raising=False)
    monkeypatch.setattr(SubmitThrottle, "wait", lambda self: None)
    submit(as_alice)
    response = submit(as_alice)
    assert response.status_code == 429
    assert response["Retry-After"] == "1"


def test_it_answers_503_overloaded_past_the_backlog_limit_and_writes_nothing(as_alice, poem, settings):
    settings.MAX_QUEUED_TASKS = 2
    submit(as_alice)
    submit(as_alice)
    response = submit(as_alice)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert response["Retry-After"]
    assert FortuneTask.objects.count() == 2


def test_it_answers_503_overloaded_when_the_oldest_queued_task_is_too_old(as_alice, poem, settings):
    task_id = submit(as_alice).json()["id"]
    FortuneTask.objects.filter(id=task_id).update(
        submitted_at=timezone.now() - timedelta(seconds=settings.MAX_QUEUE_AGE + 5)
    )
    assert submit(as_alice).status_code == 503


def queue_down(*args, **kwargs):
    raise ConnectionError("broker down")


@pytest.mark.django_db(transaction=True)
def test_when_the_queue_is_down_it_answers_503_and_leaves_nothing_behind(as_alice, poem, monkeypatch):
    monkeypatch.setattr("chat.submission.async_task", queue_down)
    response = submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert response["Retry-After"]
    assert (FortuneTask.objects.count(), Message.objects.count(), Conversation.objects.count()) == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_retry_with_the_same_key_after_the_queue_recovers_makes_a_working_task(as_alice, poem, monkeypatch):
    monkeypatch.setattr("chat.submission.async_task", queue_down)
    assert submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1").status_code == 503
    enqueued = []
    monkeypatch.setattr("chat.submission.async_task", lambda *args, **kwargs: enqueued.append(args[1]))
    retry = submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1")
    assert retry.status_code == 202
    assert retry.json()["status"] == "queued"
    assert enqueued == [retry.json()["id"]]
    assert submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1").json()["id"] == retry.json()["id"]


@pytest.mark.django_db(transaction=True)
def test_a_refused_question_in_an_existing_conversation_leaves_the_conversation_as_it_was(as_alice, poem, monkeypatch):
    monkeypatch.setattr("chat.submission.async_task", lambda *args, **kwargs: None)
    first = submit(as_alice).json()
    monkeypatch.setattr("chat.submission.async_task", queue_down)
    response = submit(as_alice, {"question": "And my love life?", "conversation": first["conversation"]})
    assert response.status_code == 503
    assert [str(t.id) for t in FortuneTask.objects.all()] == [first["id"]]
    assert [m.content for m in Message.objects.filter(conversation_id=first["conversation"])] == [
        "Will my new shop do well?"
    ]


def test_a_task_a_worker_already_took_is_not_withdrawn(alice, poem):
    task, _ = submit_question(alice, Question("Will my new shop do well?"))
    lifecycle.count_delivery(task.id)  # the broker handed it over after all, then reported a failure
    assert withdraw(task.id, task.conversation_id) is False
    assert FortuneTask.objects.filter(id=task.id).exists()


# --- Idempotency-Key --------------------------------------------------------------------------


def test_a_key_over_200_characters_is_a_400_and_writes_nothing(as_alice, poem):
    response = submit(as_alice, HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not FortuneTask.objects.exists()


def test_a_key_of_200_characters_is_kept_whole(as_alice, poem):
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="k" * 200)
    assert first.status_code == 202
    assert FortuneTask.objects.get().idempotency_key == "k" * 200


def test_the_same_key_with_another_question_is_a_422(as_alice, poem):
    submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1")
    response = submit(as_alice, {"question": "Will I find my ring?"}, HTTP_IDEMPOTENCY_KEY="q-1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert FortuneTask.objects.count() == 1


def test_the_same_key_with_another_temple_is_a_422(as_alice, poem):
    submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1")
    response = submit(
        as_alice, {"question": "Will my new shop do well?", "temple": "jade-harbor"}, HTTP_IDEMPOTENCY_KEY="q-1"
    )
    assert response.status_code == 422


def test_the_same_key_with_the_same_question_written_differently_is_the_same_task(as_alice, poem):
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1").json()
    again = submit(
        as_alice, {"question": "  Will my new shop do well?  ", "language": "en"}, HTTP_IDEMPOTENCY_KEY="q-1"
    )
    assert again.status_code == 202
    assert again.json()["id"] == first["id"]


# --- Fair share: MAX_ACTIVE_PER_USER ------------------------------------------------------------


def test_past_her_cap_alice_gets_429_too_many_active_tasks_with_retry_after(as_alice, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 2
    assert [submit(as_alice).status_code for _ in range(2)] == [202, 202]
    response = submit(as_alice)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_active_tasks"
    assert int(response["Retry-After"]) > 0
    assert FortuneTask.objects.count() == 2


def test_alice_at_her_cap_does_not_stop_bob(as_alice, as_bob, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 2
    for _ in range(3):
        submit(as_alice)
    assert submit(as_bob).status_code == 202


def test_a_finished_task_frees_a_place(as_alice, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 1
    task_id = submit(as_alice).json()["id"]
    assert submit(as_alice).status_code == 429
    run_fortune_task(task_id)
    assert submit(as_alice).status_code == 202


def test_a_task_left_running_past_its_deadline_does_not_count(as_alice, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 1
    task_id = submit(as_alice).json()["id"]
    FortuneTask.objects.filter(id=task_id).update(
        status=Status.RUNNING, deadline=timezone.now() - timedelta(seconds=settings.TASK_GRACE + 1)
    )
    assert submit(as_alice).status_code == 202
    assert FortuneTask.objects.get(id=task_id).status == Status.TIMED_OUT


def test_a_repeated_key_at_the_cap_still_returns_its_task(as_alice, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 1
    first = submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1").json()
    again = submit(as_alice, HTTP_IDEMPOTENCY_KEY="q-1")
    assert (again.status_code, again.json()["id"]) == (202, first["id"])


def test_a_cap_of_0_turns_it_off(as_alice, poem, settings):
    settings.MAX_ACTIVE_PER_USER = 0
    assert {submit(as_alice).status_code for _ in range(25)} == {202}
