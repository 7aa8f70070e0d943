"""rag/router.py: which topics a question is about, from the embedding model or topic words."""

import json
import re

import numpy as np
import pytest

from rag import embeddings, router, router_model
from rag.models import TOPICS
from rag.router import QUESTIONS_DIR, Example, route_keywords, route_vector, routing_from_scores

HELDOUT = QUESTIONS_DIR / "heldout.jsonl"


def route(question: str):
    return route_vector(embeddings.embed_one(question, timeout=60), timeout=120)


def normalised(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


# --- Routing real questions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Will my new shop do well?", "career"),
        ("She left me last month. Will she come back?", "love"),
        ("our dog has not come home", "lost_items"),
        ("the contractor will not finish the job", "disputes"),
        ("wil i pass my exams", "study"),
    ],
)
def test_it_routes_everyday_questions_to_their_topic(question, topic):
    routing = route(question)
    assert routing.method == "model"
    assert routing.routed[0].topic == topic
    assert [t.topic for t in routing.ranked][0] == topic


def test_scores_are_probabilities_ranked_best_first():
    routing = route("Should I sell my shares before the election?")
    scores = [t.score for t in routing.ranked]
    assert scores == sorted(scores, reverse=True)
    assert sorted(t.topic for t in routing.ranked) == sorted(TOPICS)
    assert sum(scores) == pytest.approx(1.0)
    assert routing.routed[0].as_dict() == {"topic": "wealth", "score": round(scores[0], 4)}


# --- The margin --------------------------------------------------------------------------------


def scores(**given: float) -> list[float]:
    return [given.get(t, 0.0) for t in TOPICS]


def test_the_runner_up_is_routed_too_when_within_the_margin(settings):
    settings.ROUTER_MARGIN = 0.2
    assert routing_from_scores(scores(love=0.5, family=0.35, health=0.15), "model").topics == ["love", "family"]
    assert routing_from_scores(scores(love=0.6, family=0.35, health=0.05), "model").topics == ["love"]


def test_the_margin_is_a_setting(settings):
    close = scores(career=0.45, wealth=0.3, travel=0.25)
    settings.ROUTER_MARGIN = 0.1
    assert routing_from_scores(close, "model").topics == ["career"]
    settings.ROUTER_MARGIN = 0.2
    assert routing_from_scores(close, "model").topics == ["career", "wealth"]


# --- Without the embedding model ---------------------------------------------------------------


def test_topic_words_route_when_the_model_cannot():
    routing = route_keywords("Will my new shop do well?")
    assert (routing.method, routing.topics) == ("keywords", ["career"])


def test_a_question_without_topic_words_routes_nowhere():
    assert route_keywords("What does the poem say?").routed == ()


# --- The model: trained once, then loaded ------------------------------------------------------


def test_the_shipped_model_matches_the_training_data():
    """Edited train.jsonl or topics.json? Run `manage.py rag_router` and commit the new model."""
    assert router.shipped_path().exists(), router.shipped_path()


def test_a_model_not_shipped_is_trained_once_and_kept_in_var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(router, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setattr(router, "_loaded", None)
    trained = []
    real_fit = router.fit

    def fit(examples, descriptions, timeout):
        trained.append(len(examples))
        return real_fit(examples[:90], descriptions, timeout)  # a quick model is enough here

    monkeypatch.setattr(router, "fit", fit)
    first = router.get_model(timeout=120)
    assert len(trained) == 1 and list((tmp_path / "router").glob("*.npz"))
    monkeypatch.setattr(router, "_loaded", None)  # as a new process
    second = router.get_model(timeout=120)
    assert len(trained) == 1
    assert np.array_equal(first.head.weights, second.head.weights)
    assert np.array_equal(first.vote.vectors, second.vote.vectors) and len(second.vote.vectors) == 90


def test_a_torn_cache_file_is_trained_again(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(router, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setattr(router, "_loaded", None)
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / f"{router._key()}.npz").write_bytes(b"not a numpy file")
    monkeypatch.setattr(router, "fit", lambda examples, descriptions, timeout: toy_model())
    assert router.get_model(timeout=5).head.weights.shape == (2, len(TOPICS))


TOY_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0]])


def toy_goal() -> np.ndarray:
    goal = np.zeros((2, len(TOPICS)))
    goal[0, 0] = goal[1, 1] = 1.0
    return goal


def toy_model() -> router_model.TopicModel:
    return router_model.train_model(TOY_VECTORS, toy_goal(), np.empty((0, 2)), np.empty((0, len(TOPICS))))


def test_train_head_learns_a_separable_problem():
    probabilities = router_model.train_head(TOY_VECTORS, toy_goal()).probabilities(TOY_VECTORS)
    assert [TOPICS[i] for i in probabilities.argmax(axis=1)] == ["career", "love"]


def test_the_nearest_questions_vote_for_their_topics():
    vote = router_model.NeighbourVote(TOY_VECTORS, toy_goal())
    probabilities = vote.probabilities(np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert [TOPICS[i] for i in probabilities.argmax(axis=1)] == ["career", "love"]
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_the_model_blends_head_and_vote_into_probabilities():
    probabilities = toy_model().probabilities(np.array([[0.8, 0.6]]))
    assert TOPICS[probabilities[0].argmax()] == "career"
    assert probabilities.sum() == pytest.approx(1.0)


def test_a_cache_file_of_the_old_format_is_ignored(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, weights=np.zeros((2, len(TOPICS))), bias=np.zeros(len(TOPICS)))  # no vote
    assert router._read_cache(path) is None


def test_a_second_topic_gets_a_share_of_the_target():
    goal = router.targets([Example("q", ("wealth", "family")), Example("r", ("travel",))])
    assert goal[0, TOPICS.index("wealth")] == pytest.approx(1 - router.SECONDARY_SHARE)
    assert goal[0, TOPICS.index("family")] == pytest.approx(router.SECONDARY_SHARE)
    assert goal[1].tolist() == [1.0 if t == "travel" else 0.0 for t in TOPICS]


# --- The labelled data -------------------------------------------------------------------------


def test_every_topic_has_at_least_40_training_questions_and_some_held_out():
    train = router.read_examples(router.TRAIN_FILE)
    heldout = router.read_examples(HELDOUT)
    for topic in TOPICS:
        assert sum(e.primary == topic for e in train) >= 40, topic
        assert sum(e.primary == topic for e in heldout) >= 10, topic
    assert any(len(e.topics) == 2 for e in train) and any(len(e.topics) == 2 for e in heldout)


def test_the_router_never_sees_the_held_out_questions():
    train = {normalised(e.question) for e in router.read_examples(router.TRAIN_FILE)}
    heldout = {normalised(json.loads(line)["question"]) for line in HELDOUT.read_text().splitlines() if line}
    assert not train & heldout
    assert "heldout" not in (QUESTIONS_DIR.parent.parent / "router.py").read_text()


def test_bad_topics_in_a_data_file_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "topics": ["astrology"]}\n')
    with pytest.raises(ValueError, match="line 1"):
        router.read_examples(path)
