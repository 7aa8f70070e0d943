from chat.pipeline import run_fortune_task

URL = "/api/v1/async-chat/conversations"


def ask(client, question="Will my new shop do well?", **extra):
    return client.post("/api/v1/async-chat/tasks", {"question": question, **extra}, format="json").json()


def test_it_lists_the_users_conversations(as_alice, as_mallory, poem):
    ask(as_alice)
    ask(as_mallory)
    body = as_alice.get(URL).json()
    assert body["count"] == 1
    assert body["results"][0]["title"] == "Will my new shop do well?"


def test_it_shows_the_question_and_the_reading_in_order(as_alice, poem):
    task = ask(as_alice)
    run_fortune_task(task["id"])
    body = as_alice.get(f"{URL}/{task['conversation']}").json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert {m["task"] for m in body["messages"]} == {task["id"]}
    assert set(body["messages"][0]) == {"role", "content", "task", "created_at"}


def test_a_follow_up_question_joins_the_same_conversation(as_alice, poem):
    first = ask(as_alice)
    second = ask(as_alice, "And my health?", conversation=first["conversation"])
    assert second["conversation"] == first["conversation"]
    body = as_alice.get(f"{URL}/{first['conversation']}").json()
    assert [m["content"] for m in body["messages"]] == ["Will my new shop do well?", "And my health?"]


def test_another_users_conversation_is_404(as_alice, as_mallory, poem):
    conversation = ask(as_alice)["conversation"]
    assert as_mallory.get(f"{URL}/{conversation}").status_code == 404
