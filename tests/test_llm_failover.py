"""LLM failover (chat/interpretation.py, chat/llm_endpoints.py): the endpoints in order, each
behind its own breaker, the offline reader last. Two real fake servers: the primary and `backup`."""

import time
from datetime import timedelta

from django.utils import timezone

from chat import llm
from chat.interpretation import interpret
from chat.models import FortuneTask
from chat.offline_reader import compose_reading
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from fortune_project.resilience.breakers import breaker_names, get_breaker
from fortune_project.resilience.deadlines import Deadline
from monitoring.drills.fake_llm import READING
from rag.passages import keyword_passages

pytest_plugins = ["tests.support.fake_llm", "tests.support.fake_backup"]

QUESTION = "Will my new job go well?"
BACKUP_MODEL = "fake-backup"  # tests.support.fake_backup's (imported as a plugin only, so pytest rewrites it)


def ask(user) -> FortuneTask:
    task = submit_question(user, Question(QUESTION))[0]
    run_fortune_task(str(task.id))
    task.refresh_from_db()
    return task


def reasons(task: FortuneTask) -> list[str]:
    return [r for r in task.result["degraded_reasons"] if r.startswith("llm")]


def offline(poem) -> str:
    return compose_reading(QUESTION, poem, keyword_passages(QUESTION, poem))


def test_a_healthy_primary_answers_and_the_fallback_is_never_called(alice, poem, fake_llm, fake_backup):
    task = ask(alice)
    assert task.result["llm"] == {"endpoint": "primary", "model": "fake-llm"}
    assert reasons(task) == []
    assert task.timings["llm_calls"]["primary"]["ok"] is True
    assert (fake_llm.calls(), fake_backup.calls()) == (1, 0)


def test_a_failing_primary_hands_the_reading_to_the_fallback(alice, poem, fake_llm, fake_backup):
    fake_llm.set_mode("error")
    task = ask(alice)
    assert task.status == "succeeded"
    assert task.result["interpretation"] == READING
    assert task.result["llm"] == {"endpoint": "backup", "model": BACKUP_MODEL}
    assert reasons(task) == ["llm_error", "llm_fallback"]
    assert task.result["degraded"] is True
    calls = task.timings["llm_calls"]
    assert (calls["primary"]["ok"], calls["backup"]["ok"]) == (False, True)
    assert fake_backup.stats()["last_request"]["model"] == BACKUP_MODEL


def test_garbage_from_the_primary_also_moves_on(alice, poem, fake_llm, fake_backup):
    fake_llm.set_mode("garbage")
    task = ask(alice)
    assert reasons(task) == ["llm_bad_output", "llm_fallback"]
    assert task.result["llm"]["endpoint"] == "backup"


def test_with_the_primary_breaker_open_the_fallback_answers_without_calling_it(alice, poem, fake_llm, fake_backup):
    get_breaker("llm").force_open(who="bob")
    started = time.monotonic()
    task = ask(alice)
    assert time.monotonic() - started < 5  # the backup's own reading, nothing spent on the primary
    assert reasons(task) == ["llm_breaker_open", "llm_fallback"]
    assert task.result["llm"]["endpoint"] == "backup"
    assert "primary" not in task.timings["llm_calls"]  # no call was made
    assert (fake_llm.calls(), fake_backup.calls()) == (0, 1)


def test_both_failing_the_offline_reader_answers_and_lists_both(alice, poem, fake_llm, fake_backup):
    fake_llm.set_mode("error")
    fake_backup.set_mode("hang")  # LLM_CHUNK_TIMEOUT (1 s) ends the wait for a first chunk
    task = ask(alice)
    assert task.status == "succeeded"
    assert task.result["interpretation"] == offline(poem)
    assert reasons(task) == ["llm_error", "llm_timeout:backup"]
    assert "llm" not in task.result
    assert [c["ok"] for c in task.timings["llm_calls"].values()] == [False, False]


def test_the_primary_hanging_still_leaves_the_task_within_its_deadline(alice, poem, fake_llm, fake_backup):
    fake_llm.set_mode("hang")
    task = ask(alice)
    assert task.status == "succeeded" and task.finished_at < task.deadline
    assert reasons(task) == ["llm_timeout", "llm_fallback"]


def test_the_fallback_is_skipped_when_less_than_its_minimum_time_is_left(poem, fake_llm, fake_backup, settings):
    settings.LLM_FALLBACKS = [{**settings.LLM_FALLBACKS[0], "min_time": 30}]
    fake_llm.set_mode("error")
    deadline = Deadline(timezone.now() + timedelta(seconds=20))
    reading = interpret(QUESTION, poem, keyword_passages(QUESTION, poem), deadline)
    assert reading.degraded_reasons == ["llm_error", "llm_timeout:backup"]
    assert reading.text == offline(poem)
    assert fake_backup.calls() == 0


def test_text_streamed_by_a_failed_endpoint_is_withdrawn_before_the_next_one_streams(poem, fake_llm, fake_backup):
    fake_llm.set_mode("stall")  # two chunks, then silence past LLM_CHUNK_TIMEOUT
    saved: list[str] = []
    deadline = Deadline(timezone.now() + timedelta(seconds=30))
    reading = interpret(QUESTION, poem, keyword_passages(QUESTION, poem), deadline, on_text=saved.append)
    assert reading.text == READING and reading.llm == {"endpoint": "backup", "model": BACKUP_MODEL}
    restart = saved.index("")
    assert restart > 0 and saved[restart - 1], "the primary's text was saved, then withdrawn"
    assert saved[-1] == READING


def test_each_fallback_has_a_breaker_of_its_own(alice, poem, fake_llm, fake_backup):
    assert "llm-backup" in breaker_names()
    fake_llm.set_mode("error")
    fake_backup.set_mode("error")
    for _ in range(5):
        assert reasons(ask(alice)) == ["llm_error", "llm_error:backup"]
    assert (get_breaker("llm").state(), get_breaker("llm-backup").state()) == ("open", "open")
    fake_llm.control(reset=True)
    fake_backup.control(reset=True)
    assert reasons(ask(alice)) == ["llm_breaker_open", "llm_breaker_open:backup"]
    assert (fake_llm.calls(), fake_backup.calls()) == (0, 0)


def test_a_fallback_alone_answers_when_no_primary_is_configured(alice, poem, fake_llm, fake_backup, settings):
    settings.LLM_BASE_URL, settings.OPENAI_API_KEY = "", ""
    task = ask(alice)
    assert task.result["llm"]["endpoint"] == "backup"
    assert reasons(task) == ["llm_fallback"]


def test_without_fallbacks_a_failure_reads_exactly_as_before(alice, poem, fake_llm, settings):
    settings.LLM_FALLBACKS = []
    fake_llm.set_mode("error")
    task = ask(alice)
    assert reasons(task) == ["llm_error"]
    assert "llm" not in task.result


def test_the_client_is_one_per_endpoint(fake_llm, fake_backup, settings):
    from chat.llm_endpoints import fallbacks, primary

    backup = fallbacks()[0]
    assert str(llm.client(backup).base_url).startswith(fake_backup.base_url)
    assert str(llm.client(primary()).base_url).startswith(fake_llm.base_url)
    assert llm.client(backup).max_retries == 0
