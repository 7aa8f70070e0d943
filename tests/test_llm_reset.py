"""The task socket across an LLM failover: text streamed by the failed endpoint is withdrawn with
{"type": "task.reset"}, and a client that follows the messages ends with the fallback's text."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from chat.models import FortuneTask
from chat.pipeline import run_fortune_task
from chat.submission import Question, submit_question
from monitoring.drills.fake_llm import READING
from tests.test_task_socket import communicator, in_thread, watch

pytest_plugins = ["tests.support.fake_llm", "tests.support.fake_backup"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def replay(messages: list[dict]) -> str:
    """The text a client shows: updates set it, tokens extend it, a reset clears it."""
    text = ""
    for message in messages:
        if message["type"] == "task.update":
            text = message["task"]["partial_text"]
        elif message["type"] == "task.token":
            text += message["text"]
        elif message["type"] == "task.reset":
            text = ""
    return text


def test_a_failover_resets_the_streamed_text_and_the_fallback_streams_afresh(
    alice, poem, fake_llm, fake_backup, settings
):
    settings.LLM_FALLBACKS = [{**settings.LLM_FALLBACKS[0], "timeout": 15.0}]
    task: FortuneTask = submit_question(alice, Question("Will my new shop do well?", poem=poem))[0]
    fake_llm.set_mode("stall", chunk_delay=0.05)  # two chunks, then silence past LLM_CHUNK_TIMEOUT
    fake_backup.set_mode("slow", latency=0.3)  # its first chunk comes well after the withdrawal is polled
    ws = communicator(task.id, alice)

    async def scenario():
        watching = asyncio.ensure_future(watch(ws, timeout=30))
        await asyncio.sleep(0.3)
        worker = in_thread(run_fortune_task, str(task.id))
        result = await watching
        await sync_to_async(worker.join)()
        return result

    messages, code = async_to_sync(scenario)()
    kinds = [m["type"] for m in messages]
    assert code == 1000 and "task.reset" in kinds
    reset = kinds.index("task.reset")
    assert "task.token" in kinds[:reset], "the primary's text streamed first"
    assert kinds[reset + 1] == "task.update", "a full update follows the reset"
    after = "".join(m["text"] for m in messages[reset:] if m["type"] == "task.token")
    assert READING.endswith(after) and after
    assert replay(messages[:-1]) == READING  # before the terminal update, from the stream alone
    final = messages[-1]["task"]["result"]
    assert final["interpretation"] == READING and final["llm"]["endpoint"] == "backup"
    assert "llm_timeout" in final["degraded_reasons"] and "llm_fallback" in final["degraded_reasons"]
