"""The LLM rung of the degradation ladder: an open llm breaker means no call and a fast fallback."""

import time

import pytest

from chat.models import FortuneTask
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from fortune_project.resilience.breakers import Breaker, get_breaker

pytest_plugins = ["tests.support.fake_llm"]


@pytest.fixture
def clock(monkeypatch):
    now = [time.time()]
    monkeypatch.setattr(Breaker, "clock", staticmethod(lambda: now[0]))
    return now


def ask(user) -> FortuneTask:
    task = submit_question(user, Question("Will my new job go well?"))[0]
    run_fortune_task(str(task.id))
    task.refresh_from_db()
    return task


def test_five_llm_errors_open_the_llm_breaker(alice, poem, fake_llm):
    fake_llm.set_mode("error")
    for _ in range(5):
        assert ask(alice).result["degraded_reasons"][-1] == "llm_error"
    assert get_breaker("llm").state() == "open"


def test_with_the_llm_breaker_open_a_task_degrades_at_once_without_calling_the_llm(alice, poem, fake_llm, bob):
    get_breaker("llm").force_open(who="bob")
    started = time.monotonic()
    task = ask(alice)
    assert time.monotonic() - started < 0.5  # no waiting on a known-bad dependency
    assert task.status == "succeeded"
    assert task.result["degraded"] is True
    assert "llm_breaker_open" in task.result["degraded_reasons"]
    assert task.timings["llm_ms"] < 100
    assert fake_llm.calls() == 0


def test_after_recovery_the_next_task_probes_and_closes_the_breaker(alice, poem, fake_llm, clock, settings):
    fake_llm.set_mode("error")
    for _ in range(5):
        ask(alice)
    assert get_breaker("llm").state() == "open"
    fake_llm.control(mode="ok", reset=True)
    clock[0] += settings.BREAKERS["llm"]["recovery_timeout"] + 1
    task = ask(alice)
    assert not [r for r in task.result["degraded_reasons"] if r.startswith("llm")]
    assert fake_llm.calls() == 1
    assert get_breaker("llm").state() == "closed"


def test_a_failed_probe_opens_the_breaker_again(alice, poem, fake_llm, clock, settings):
    fake_llm.set_mode("error")
    for _ in range(5):
        ask(alice)
    clock[0] += settings.BREAKERS["llm"]["recovery_timeout"] + 1
    assert ask(alice).result["degraded_reasons"][-1] == "llm_error"
    assert get_breaker("llm").state() == "open"
