"""The Django-Q2 task: one fortune question from queued to a terminal state.

Idempotent (delivery is at-least-once): only the worker whose claim wins runs the stages, and
every stage change is conditional, so a cancelled or expired task stops at the next stage.
"""

import logging
import os
import time
from collections.abc import Callable

from django.db import transaction

from chat import lifecycle
from chat.interpretation import interpret
from chat.live import notify_task
from chat.models import FortuneTask, Message, Stage, Status, TaskId
from chat.prompt import recent_turns
from fortune_project.resilience.deadlines import Deadline, DeadlineExceeded
from rag.draw import NoPoems, draw_poem
from rag.retrieval import retrieve

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """The task left `running` under us (cancelled or expired): stop quietly."""


def run_fortune_task(task_id: str, attempt: int | None = None) -> str:
    """`attempt` is the one enqueued (chat/rescue.py re-queues an orphan as the next); a delivery
    of an earlier attempt finds the claim refused. None: enqueued before attempts existed."""
    task = lifecycle.claim_task(task_id, os.getpid(), attempt=attempt, delivered=True)
    if task is None:
        return "skipped"
    timings: dict[str, object] = {}  # each stage's time as it ends, kept whichever way the task ends
    try:
        return _run(task, timings)
    except _Stopped:
        return "stopped"
    except DeadlineExceeded:
        lifecycle.finish_task(task, Status.TIMED_OUT, error=lifecycle.DEADLINE_ERROR, timings=timings)
        return Status.TIMED_OUT
    except NoPoems as exc:
        error = {"code": "no_poems", "message": str(exc)}
        lifecycle.finish_task(task, Status.FAILED, error=error, timings=timings)
        return Status.FAILED
    except Exception:
        log.exception("task %s crashed", task_id)
        error = {"code": "internal_error", "message": "The reading could not be prepared."}
        lifecycle.finish_task(task, Status.FAILED, error=error, timings=timings)
        return Status.FAILED
    except BaseException:
        # Django-Q2's own timeout (a SystemExit): record it before the worker is replaced.
        lifecycle.finish_task(task, Status.TIMED_OUT, error=lifecycle.DEADLINE_ERROR, timings=timings)
        raise


def _stage(task: FortuneTask, stage: str) -> None:
    if not lifecycle.move_to_stage(task.id, stage, task.attempt):
        raise _Stopped


def _run(task: FortuneTask, timings: dict[str, object]) -> str:
    deadline = Deadline(task.deadline)
    poem = task.poem or draw_poem(task.temple)

    started = time.monotonic()
    retrieval = retrieve(task.question, poem, deadline)
    timings["rag_ms"] = int((time.monotonic() - started) * 1000)

    _stage(task, Stage.INTERPRETING)
    started = time.monotonic()
    reading = interpret(
        task.question,
        poem,
        retrieval.passages,
        deadline,
        on_text=progress_saver(task.id, task.attempt),
        history=recent_turns(task.conversation_id, task.id),
        language=task.language,
        topics=[t.topic for t in retrieval.topics],
    )
    timings["llm_ms"] = int((time.monotonic() - started) * 1000)
    if reading.calls:
        timings["llm_calls"] = reading.calls  # per endpoint {"ms", "ok"}: chat/llm_stats.py adds them up

    _stage(task, Stage.SAVING)
    reasons = retrieval.degraded_reasons + reading.degraded_reasons
    result = {
        "poem": poem_summary(poem),
        "interpretation": reading.text,
        "degraded": bool(reasons),
        "degraded_reasons": reasons,
        "sources": sorted({p.poem for p in retrieval.passages} | {poem.id}),
        "passages": [p.as_dict() for p in retrieval.passages],
        "topics": [t.as_dict() for t in retrieval.topics],  # the routed topics, best first
    }
    if reading.llm:
        result["llm"] = reading.llm  # which endpoint answered: {"endpoint", "model"}
    with transaction.atomic():
        if not lifecycle.finish_task(task, Status.SUCCEEDED, result=result, timings=timings):
            raise _Stopped
        Message.objects.create(conversation=task.conversation, role="assistant", content=reading.text, task=task)
    return Status.SUCCEEDED


def progress_saver(task_id: TaskId, attempt: int | None = None) -> Callable[[str], bool]:
    """Saves the streamed text and wakes the task's sockets; False once the task stopped running."""

    def save(text: str) -> bool:
        alive = lifecycle.save_partial_text(task_id, text, attempt)
        notify_task(task_id)
        return alive

    return save


def poem_summary(poem) -> dict:
    return {
        "id": poem.id,
        "temple": poem.temple.slug,
        "number": poem.number,
        "title": poem.title,
        "rank": poem.rank,
        "verse": poem.verse,
        "meaning": poem.meaning,
    }
