from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import OperationalError

from chat import sweeper
from chat.models import FortuneTask, Status
from chat.submission import Question, submit_question


def test_a_pass_ends_overdue_tasks_and_leaves_a_heartbeat(alice, poem, settings):
    task = submit_question(alice, Question("Will my job go well?"))[0]
    later = task.deadline + timedelta(seconds=settings.TASK_GRACE + 1)
    assert sweeper.sweep_once(now=later) == 1
    assert FortuneTask.objects.get(id=task.id).status == Status.TIMED_OUT
    assert cache.get(sweeper.HEARTBEAT_KEY) == {"at": later.isoformat(), "ended": 1, "rescued": 0, "lost": 0}


@pytest.mark.parametrize("fault", [OperationalError("database is locked"), ConnectionError("cache down")])
def test_the_loop_outlives_a_failing_pass(db, monkeypatch, fault):
    passes = []

    def sweep_once():
        passes.append(1)
        if len(passes) == 1:
            raise fault

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    sweeper.sweep_forever(interval=0, should_stop=lambda: len(passes) >= 2)
    assert len(passes) == 2
