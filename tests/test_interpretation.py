"""chat/interpretation.py: an LLM reading when it can, the offline reader when it cannot."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import interpretation, llm
from chat.interpretation import interpret
from chat.live import TextPublisher
from chat.models import FortuneTask, Message
from chat.offline_reader import compose_reading
from chat.pipeline import run_fortune_task
from chat.prompt import recent_turns
from chat.submission import Question, submit_question
from fortune_project.resilience.deadlines import Deadline, DeadlineExceeded
from monitoring.drills.fake_llm import READING
from rag.passages import keyword_passages

pytest_plugins = ["tests.support.fake_llm"]  # the fake_llm fixtures

QUESTION = "Will my new shop do well?"


def deadline_in(seconds: float) -> Deadline:
    return Deadline(timezone.now() + timedelta(seconds=seconds))


def ask(poem, seconds: float = 60, **kwargs) -> interpretation.Interpretation:
    return interpret(QUESTION, poem, keyword_passages(QUESTION, poem), deadline_in(seconds), **kwargs)


def llm_reasons(result: dict) -> list[str]:
    return [r for r in result["degraded_reasons"] if r.startswith("llm")]


def offline(poem) -> str:
    return compose_reading(QUESTION, poem, keyword_passages(QUESTION, poem))


# --- without a server -----------------------------------------------------------------------------


def test_without_an_llm_the_offline_reader_answers(poem, settings):
    settings.LLM_BASE_URL, settings.OPENAI_API_KEY = "", ""
    reading = ask(poem)
    assert reading.text == offline(poem)
    assert reading.degraded_reasons == ["llm_unconfigured"]


def test_a_passed_deadline_is_the_one_thing_it_raises(poem, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    with pytest.raises(DeadlineExceeded):
        ask(poem, seconds=-1)


def test_with_too_little_time_left_it_does_not_call_the_llm(poem, settings, monkeypatch):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    monkeypatch.setattr(llm, "stream_reading", lambda *a, **k: pytest.fail("the LLM was called"))
    reading = ask(poem, seconds=1.2)
    assert reading.degraded_reasons == ["llm_timeout"]


def test_an_unexpected_failure_falls_back_as_llm_error(poem, settings, monkeypatch):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(llm, "stream_reading", broken)
    reading = ask(poem)
    assert (reading.text, reading.degraded_reasons) == (offline(poem), ["llm_error"])


def test_the_llm_budget_is_the_smaller_of_llm_timeout_and_the_time_left(poem, settings, monkeypatch):
    settings.LLM_BASE_URL, settings.LLM_TIMEOUT = "http://127.0.0.1:9/v1", 60
    budgets: list[float] = []
    monkeypatch.setattr(
        llm, "stream_reading", lambda m, deadline, on_text, endpoint: budgets.append(deadline.for_call("llm")) or "ok"
    )
    ask(poem, seconds=10)
    ask(poem, seconds=600)
    assert 8.5 < budgets[0] <= 9.0  # ten seconds left, one kept back for the fallback
    assert 59.9 < budgets[1] <= 60


def test_both_readers_answer_on_the_routed_topics(poem, settings, monkeypatch):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    sent: list[str] = []
    monkeypatch.setattr(
        llm, "stream_reading", lambda m, deadline, on_text, endpoint: sent.append(m[1]["content"]) or "ok"
    )
    ask(poem, topics=["wealth", "career"])
    assert "<topics>\nwealth, career\n</topics>" in sent[0]
    settings.LLM_BASE_URL = ""
    assert f"On money: {poem.advice['wealth']}" in ask(poem, topics=["wealth", "career"]).text


# --- the throttle ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_partial_text_is_saved_at_most_every_interval_and_flushed_at_the_end():
    clock, saved = Clock(), []
    publisher = TextPublisher(saved.append, interval=0.25, clock=clock)
    for text in ("a", "ab", "abc"):
        publisher(text)
        clock.now += 0.1
    clock.now += 0.1
    publisher("abcd")
    publisher("abcd")
    publisher.flush("abcde")
    assert saved == ["a", "abcd", "abcde"]


def test_the_publisher_reports_a_stopped_task_and_survives_a_failing_save():
    assert TextPublisher(lambda text: False)("a") is False

    def broken(text):
        raise OSError("database is locked")

    assert TextPublisher(broken)("a") is True


# --- against the fake server -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_working_llm_gives_the_reading_not_degraded(poem, fake_llm):
    saved: list[str] = []
    reading = ask(poem, on_text=saved.append)
    assert (reading.text, reading.degraded_reasons) == (READING, [])
    assert saved[-1] == READING


@pytest.mark.slow
def test_streamed_text_is_saved_at_least_every_half_second(poem, fake_llm, settings):
    fake_llm.set_mode("slow", latency=0.15)
    settings.LLM_TIMEOUT = 5
    saves: list[tuple[float, str]] = []
    reading = ask(poem, on_text=lambda text: saves.append((time.monotonic(), text)))
    assert reading.degraded_reasons == []
    gaps = [later[0] - earlier[0] for earlier, later in zip(saves, saves[1:], strict=False)]
    assert len(saves) >= 4
    assert max(gaps) < 0.55
    assert min(gaps[:-1]) >= 0.24, "saves are throttled (the final flush is not)"
    assert saves[-1][1] == READING


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, reason",
    [
        ("slow", "llm_timeout"),
        ("hang", "llm_timeout"),
        ("stall", "llm_timeout"),
        ("error", "llm_error"),
        ("garbage", "llm_bad_output"),
        ("empty", "llm_bad_output"),
    ],
)
def test_a_failing_llm_falls_back_to_the_offline_reader(poem, fake_llm, mode, reason):
    fake_llm.set_mode(mode, latency=0.8)
    started = time.monotonic()
    reading = ask(poem)
    assert (reading.text, reading.degraded_reasons) == (offline(poem), [reason])
    assert time.monotonic() - started < 2.5  # LLM_TIMEOUT is 2 s


@pytest.mark.slow
def test_a_reply_over_the_size_cap_is_cut_not_degraded(poem, fake_llm, settings):
    fake_llm.set_mode("huge", chunk_delay=0.005)
    settings.LLM_MAX_CHARS = 600
    reading = ask(poem)
    assert reading.degraded_reasons == []
    assert len(reading.text) <= 600
    assert reading.text.endswith(".")


@pytest.mark.slow
def test_it_sends_the_conversation_history_and_language(poem, fake_llm, alice):
    first, _ = submit_question(alice, Question("Is my job safe?", poem=poem))
    Message.objects.create(conversation=first.conversation, role="assistant", content="Patience, says the lantern.")
    second, _ = submit_question(alice, Question("And my move abroad?", language="ja", conversation=first.conversation))
    interpret(
        second.question,
        poem,
        [],
        deadline_in(60),
        language="ja",
        history=recent_turns(second.conversation_id, second.id),
    )
    system, user = fake_llm.stats()["last_request"]["messages"]
    assert "Write in Japanese" in system["content"]
    assert "Seeker: Is my job safe?\nReader: Patience, says the lantern." in user["content"]
    assert user["content"].count("And my move abroad?") == 1  # the question, not also as history


# --- through the pipeline --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_pipeline_saves_the_llm_reading_and_the_assistant_message(poem, fake_llm, alice):
    task, _ = submit_question(alice, Question(QUESTION, poem=poem))
    assert run_fortune_task(str(task.id)) == "succeeded"
    task = FortuneTask.objects.get(id=task.id)
    assert task.result["interpretation"] == READING
    assert not llm_reasons(task.result)  # retrieval may degrade on its own; the reading did not
    assert task.partial_text == READING
    assert Message.objects.get(task=task, role="assistant").content == READING


@pytest.mark.slow
def test_a_hung_llm_ends_the_task_by_llm_timeout_plus_two_seconds_with_the_fallback(poem, fake_llm, alice):
    fake_llm.set_mode("hang")
    task, _ = submit_question(alice, Question(QUESTION, poem=poem))
    started = time.monotonic()
    assert run_fortune_task(str(task.id)) == "succeeded"
    assert time.monotonic() - started < 2 + 2
    task = FortuneTask.objects.get(id=task.id)
    assert task.result["degraded"] is True
    assert llm_reasons(task.result) == ["llm_timeout"]
    assert task.result["interpretation"].startswith(f"You drew poem {poem.number} of {poem.temple.name}")
