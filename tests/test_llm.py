"""chat/llm.py: the real openai client against fake_llm in each mode, within its budget."""

import time

import pytest

from chat import llm
from fortune_project.resilience.deadlines import Deadline
from monitoring.drills.fake_llm import READING

pytest_plugins = ["tests.support.fake_llm"]  # the fake_llm fixtures

MESSAGES = [{"role": "user", "content": "Will my shop do well?"}]


def read(budget: float = 2.0, on_text=None) -> tuple[str, float]:
    started = time.monotonic()
    text = llm.stream_reading(MESSAGES, deadline=Deadline.after(budget), on_text=on_text)
    return text, time.monotonic() - started


def fails_within(exc_type: type[Exception], seconds: float, budget: float = 2.0) -> Exception:
    started = time.monotonic()
    with pytest.raises(exc_type) as error:
        llm.stream_reading(MESSAGES, deadline=Deadline.after(budget))
    assert time.monotonic() - started < seconds
    return error.value


# --- configuration and pure helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url, key, configured",
    [("", "", False), ("http://llm:8000/v1", "", True), ("", "sk-test", True)],
)
def test_llm_is_configured_by_a_base_url_or_a_key(settings, base_url, key, configured):
    settings.LLM_BASE_URL, settings.OPENAI_API_KEY = base_url, key
    assert llm.llm_configured() is configured


def test_the_client_never_retries_on_its_own(settings):
    settings.LLM_BASE_URL, settings.OPENAI_API_KEY = "http://127.0.0.1:9/v1", ""
    assert llm.client().max_retries == 0


def test_socket_timeouts_never_exceed_the_budget(settings):
    settings.LLM_CHUNK_TIMEOUT = 15
    timeout = llm.http_timeout(2.5)
    assert (timeout.read, timeout.connect, timeout.write) == (2.5, 2.5, 2.5)
    assert llm.http_timeout(60).read == 15


def test_a_long_reply_is_cut_at_a_sentence_end():
    text = "First sentence here. Second one is longer than that. Third never fits"
    assert llm.cap_text(text, 60) == "First sentence here. Second one is longer than that."


def test_a_reply_without_sentence_ends_is_cut_at_a_word():
    assert llm.cap_text("word " * 50, 40).endswith("word…")
    assert len(llm.cap_text("word " * 50, 40)) <= 40


@pytest.mark.parametrize("text", ["", "   \n ", "\x00\x01\x02", "12345 ...", "\ufffd\ufffd\ufffd ab"])
def test_unreadable_text_is_bad_output(text):
    with pytest.raises(llm.LLMBadOutput):
        llm.usable_text(text)


def test_usable_text_drops_control_characters_and_extra_blank_lines():
    assert llm.usable_text("  Patience\x07 brings\n\n\n\nfruit.  ") == "Patience brings\n\nfruit."


# --- against the fake server ---------------------------------------------------------------------


@pytest.mark.slow
def test_ok_streams_the_reading_in_order(fake_llm):
    seen: list[str] = []
    text, _ = read(on_text=seen.append)
    assert text == READING
    assert len(seen) >= 5
    assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:], strict=False))
    assert fake_llm.calls() == 1


@pytest.mark.slow
def test_it_sends_the_model_and_a_token_limit(fake_llm, settings):
    read()
    request = fake_llm.stats()["last_request"]
    assert request["model"] == "fake-llm"
    assert request["stream"] is True
    assert request["max_tokens"] == settings.LLM_MAX_CHARS // 2


@pytest.mark.slow
def test_slow_beyond_the_budget_times_out_by_the_budget(fake_llm):
    fake_llm.set_mode("slow", latency=0.6)
    error = fails_within(llm.LLMTimeout, 2.5, budget=2.0)
    assert "within 2.0 s" in str(error)


@pytest.mark.slow
def test_hang_times_out_by_the_chunk_gap(fake_llm, settings):
    fake_llm.set_mode("hang")
    settings.LLM_CHUNK_TIMEOUT = 1.0
    fails_within(llm.LLMTimeout, 1.5, budget=5.0)


@pytest.mark.slow
def test_hang_never_outlives_a_budget_shorter_than_the_gap(fake_llm, settings):
    fake_llm.set_mode("hang")
    settings.LLM_CHUNK_TIMEOUT = 30
    fails_within(llm.LLMTimeout, 1.5, budget=1.0)


@pytest.mark.slow
def test_a_stream_that_stalls_midway_times_out(fake_llm, settings):
    fake_llm.set_mode("stall")
    seen: list[str] = []
    started = time.monotonic()
    with pytest.raises(llm.LLMTimeout):
        llm.stream_reading(MESSAGES, deadline=Deadline.after(5.0), on_text=seen.append)
    assert time.monotonic() - started < 1.6
    assert seen, "the chunks before the stall were passed on"


@pytest.mark.slow
def test_bytes_that_never_form_an_event_cannot_hold_the_call(fake_llm, settings):
    """Every socket read returns quickly here; only the queue wait keeps the budget."""
    fake_llm.set_mode("drip")
    settings.LLM_CHUNK_TIMEOUT = 30
    fails_within(llm.LLMTimeout, 1.5, budget=1.0)


@pytest.mark.slow
def test_a_500_is_an_llm_error_and_is_not_retried(fake_llm):
    fake_llm.set_mode("error")
    error = fails_within(llm.LLMError, 1.0)
    assert type(error) is llm.LLMError
    assert "HTTP 500" in str(error)
    assert fake_llm.calls() == 1


@pytest.mark.slow
def test_flaky_fails_then_answers(fake_llm):
    fake_llm.set_mode("flaky")
    with pytest.raises(llm.LLMError):
        read()
    assert read()[0] == READING


@pytest.mark.slow
def test_a_refused_connection_is_an_llm_error(settings):
    from tests.support.processes import free_port

    settings.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    error = fails_within(llm.LLMError, 1.0)
    assert type(error) is llm.LLMError


@pytest.mark.slow
def test_garbage_is_bad_output(fake_llm):
    fake_llm.set_mode("garbage")
    fails_within(llm.LLMBadOutput, 1.0)


@pytest.mark.slow
def test_an_empty_stream_is_bad_output(fake_llm):
    fake_llm.set_mode("empty")
    fails_within(llm.LLMBadOutput, 1.0)


@pytest.mark.slow
def test_a_reply_over_the_size_cap_is_cut_and_reading_stops(fake_llm, settings):
    fake_llm.set_mode("huge", chunk_delay=0.01)
    settings.LLM_MAX_CHARS = 500
    seen: list[str] = []
    text, elapsed = read(on_text=seen.append)
    assert len(text) <= 500
    assert text.endswith("answer.")
    assert max(len(s) for s in seen) <= 500
    assert elapsed < 1.0, "it stopped reading at the cap instead of taking the whole 50 kB"


@pytest.mark.slow
def test_on_text_returning_false_stops_the_call(fake_llm):
    fake_llm.set_mode("slow", latency=0.2)
    calls: list[str] = []

    def cancelled(text: str) -> bool:
        calls.append(text)
        return False

    text, elapsed = read(on_text=cancelled)
    assert len(calls) == 1
    assert text == calls[0]
    assert elapsed < 0.6
