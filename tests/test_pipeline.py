from datetime import timedelta

import pytest

from chat.models import FortuneTask, Message, Status
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from rag.models import Temple


@pytest.fixture
def ask(alice, poem):
    def ask(text="I'm thinking of changing jobs, is it a good time?", **kwargs) -> FortuneTask:
        return submit_question(alice, Question(text, **kwargs))[0]

    return ask


def test_it_answers_with_the_poem_and_topic_advice(ask, poem):
    task = ask()
    assert run_fortune_task(str(task.id)) == Status.SUCCEEDED
    task.refresh_from_db()
    result = task.result
    assert result["poem"] == {
        "id": poem.id,
        "temple": "jade-harbor",
        "number": 1,
        "title": poem.title,
        "rank": "blessing",
        "verse": poem.verse,
        "meaning": poem.meaning,
    }
    assert poem.advice["career"] in result["interpretation"]
    assert result["passages"][0]["topic"] == "career"
    assert result["sources"] == [poem.id]
    assert result["topics"][0]["topic"] == "career" and 0 < result["topics"][0]["score"] <= 1


@pytest.mark.parametrize(
    ("question", "topic", "said"),
    [
        ("Will my new shop do well?", "career", "On work:"),
        ("She left me last month. Will she come back?", "love", "On love:"),
    ],
)
def test_without_an_llm_the_reading_answers_on_the_routed_topic(ask, poem, question, topic, said):
    task = ask(question)
    run_fortune_task(str(task.id))
    task.refresh_from_db()
    assert [t["topic"] for t in task.result["topics"]][0] == topic
    assert f"{said} {poem.advice[topic]}" in task.result["interpretation"]
    assert "On what was lost" not in task.result["interpretation"]


def test_without_an_llm_the_reading_is_marked_degraded(ask):
    task = ask()
    run_fortune_task(str(task.id))
    task.refresh_from_db()
    assert task.result["degraded"] is True
    assert "llm_unconfigured" in task.result["degraded_reasons"]


def test_it_uses_the_poem_the_user_names(ask, poem):
    other = poem.__class__.objects.create(
        temple=poem.temple, number=2, title="Second", rank="middle", verse="v", meaning="m", advice={}
    )
    task = ask(poem=other)
    run_fortune_task(str(task.id))
    task.refresh_from_db()
    assert task.result["poem"]["id"] == other.id


def test_it_saves_the_reading_as_the_assistants_message(ask):
    task = ask()
    run_fortune_task(str(task.id))
    reply = Message.objects.get(task=task, role="assistant")
    assert reply.content == FortuneTask.objects.get(id=task.id).result["interpretation"]


def test_a_redelivered_task_runs_only_once(ask):
    task = ask()
    assert run_fortune_task(str(task.id)) == Status.SUCCEEDED
    assert run_fortune_task(str(task.id)) == "skipped"
    task.refresh_from_db()
    assert task.deliveries == 2
    assert Message.objects.filter(task=task, role="assistant").count() == 1


def test_a_temple_without_poems_fails_the_task_clearly(ask):
    empty = Temple.objects.create(slug="empty", name="Empty Shrine")
    task = ask(temple=empty)
    assert run_fortune_task(str(task.id)) == Status.FAILED
    task.refresh_from_db()
    assert task.error["code"] == "no_poems"


def test_a_task_claimed_after_its_deadline_times_out(ask):
    task = ask()
    FortuneTask.objects.filter(id=task.id).update(deadline=task.submitted_at - timedelta(seconds=1))
    assert run_fortune_task(str(task.id)) == "skipped"
    assert FortuneTask.objects.get(id=task.id).status == Status.TIMED_OUT


def crash(*args, **kwargs):
    raise RuntimeError("internal detail")


def test_a_crash_inside_a_stage_fails_the_task_without_leaking_details(ask, monkeypatch):
    monkeypatch.setattr("chat.pipeline.retrieve", crash)
    task = ask()
    assert run_fortune_task(str(task.id)) == Status.FAILED
    task.refresh_from_db()
    assert task.error == {"code": "internal_error", "message": "The reading could not be prepared."}


def test_djangoq_timeout_marks_the_task_timed_out_and_propagates(ask, monkeypatch):
    class TimeoutException(SystemExit):
        pass

    def killed(*args, **kwargs):
        raise TimeoutException

    monkeypatch.setattr("chat.pipeline.retrieve", killed)
    task = ask()
    with pytest.raises(TimeoutException):
        run_fortune_task(str(task.id))
    assert FortuneTask.objects.get(id=task.id).status == Status.TIMED_OUT


def test_a_task_that_fails_while_interpreting_keeps_its_retrieval_time(ask, monkeypatch):
    monkeypatch.setattr("chat.pipeline.interpret", crash)
    task = ask()
    assert run_fortune_task(str(task.id)) == Status.FAILED
    timings = FortuneTask.objects.get(id=task.id).timings
    assert timings["rag_ms"] is not None and timings["llm_ms"] is None
