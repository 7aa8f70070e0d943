"""`manage.py rag_eval`: topic-routing accuracy on the held-out questions, and what it prints."""

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rag import evaluation
from rag.management.commands import rag_eval
from rag.models import TOPICS

# The held-out top-1 this test holds the router to: the 95 %. The router measures 95.5 %
# on the held-out part as a whole (README, "Topic routing") but 93.4 % on its original 198
# questions, so this floor has almost no slack: raise it with the router, never lower it to pass.
MIN_TOP1 = 95


@pytest.fixture(scope="module")
def measured() -> evaluation.Evaluation:
    return evaluation.evaluate()


@pytest.fixture
def run(measured, monkeypatch, capsys):
    """The command over one shared evaluation (embedding 1,400 questions takes a while)."""
    monkeypatch.setattr(rag_eval, "evaluate", lambda folds: measured)

    def run(*args: str) -> str:
        call_command("rag_eval", *args)
        return capsys.readouterr().out

    return run


def figure(out: str, label: str) -> float:
    return float(re.search(rf"{label}\s+top-1\s+([\d.]+) %", out).group(1))


def test_it_reports_held_out_top1_at_or_above_the_floor(run):
    out = run("--min-top1", str(MIN_TOP1))
    assert figure(out, "Held-out") >= MIN_TOP1


def test_cross_validation_is_within_two_points_of_the_held_out_figure(run):
    out = run()
    assert abs(figure(out, "5-fold CV") - figure(out, "Held-out")) <= 2.0


def test_it_says_how_two_topic_questions_are_scored_and_shows_every_section(run, measured):
    out = run()
    assert "top-1 counts a question right only when the best topic is its primary" in out
    assert f"held out: {len(measured.heldout.outcomes)} questions" in out
    for section in ("any listed", "top-2", "Baseline", "Per-topic recall", "Confusion matrix", "Misses"):
        assert section in out
    for topic in TOPICS:
        assert re.search(rf"^  {topic}\s+\d+/\d+", out, re.MULTILINE), topic
    assert out.count(" -> ") == len(measured.heldout.misses())


def test_it_fails_below_the_threshold(run):
    with pytest.raises(CommandError, match="below --min-top1 100"):
        run("--min-top1", "100")


def test_the_confusion_matrix_rows_add_up_to_the_questions_per_topic(measured):
    confusion = measured.heldout.confusion()
    for topic, (_, asked) in measured.heldout.recall().items():
        assert sum(confusion[(topic, p)] for p in TOPICS) == asked


def test_cross_validation_folds_cover_every_question_once(measured):
    questions = [o.example.question for fold in measured.folds for o in fold.outcomes]
    assert len(questions) == len(measured.train) + len(measured.heldout.outcomes)
    assert len(measured.folds) == 5
