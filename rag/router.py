"""Topic routing: which of the nine topics a question is about, with scores.

A softmax (multinomial logistic) regression over the question's sentence embedding, blended with
a vote of the most similar labelled questions (rag/router_model.py), trained on the example
questions in `rag/data/questions/train.jsonl` plus each topic's description (`topics.json`).
The held-out file is never read here, only by `rag/evaluation.py` to measure.

Ranking a question against each advice text directly followed incidental words ("come back",
"shop") more than the question's intent, because advice wording varies from poem to poem; the
router learns intent from questions people actually ask. It needs only the embedding model, so it
works while Chroma is down; without the model, `route_keywords` guesses from topic words.

The trained model (the head's weights, and the labelled questions' vectors for the vote) ships in
`rag/data/router/` (`manage.py rag_router` rebuilds it), named by the embedding model and a hash
of the training data and settings, so a process loads it in milliseconds. A model missing there
(another embedding model, edited data) is trained on first use: embedding ~2,300 questions takes
tens of seconds on an idle machine, far longer on a busy one; it is then kept in `VAR_DIR/router/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from rag import embeddings, router_model
from rag.embeddings import EmbeddingError
from rag.models import TOPICS
from rag.passages import topic_scores
from rag.router_model import LinearHead, NeighbourVote, TopicModel, train_model

if TYPE_CHECKING:  # numpy is imported where used, so importing this module loads no BLAS
    import numpy as np

log = logging.getLogger(__name__)

QUESTIONS_DIR = Path(__file__).resolve().parent / "data" / "questions"
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "router"
TRAIN_FILE = QUESTIONS_DIR / "train.jsonl"
DESCRIPTIONS_FILE = QUESTIONS_DIR / "topics.json"

# Bump when the features or the training below change: cached models of older formats are ignored.
ROUTER_FORMAT = 2
# Of a two-topic line's target, the share given to its second topic: such a question is mostly
# about its first topic, and the model should say the second is close.
SECONDARY_SHARE = 0.3


@dataclass(frozen=True)
class Example:
    question: str
    topics: tuple[str, ...]  # the primary topic first, then perhaps a secondary one

    @property
    def primary(self) -> str:
        return self.topics[0]


@dataclass(frozen=True)
class TopicScore:
    topic: str
    score: float

    def as_dict(self) -> dict:
        return {"topic": self.topic, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Routing:
    """Every topic ranked best first, and the routed ones: the best, plus the runner-up when it
    scores within the margin of the best. `routed` is empty when nothing pointed at a topic."""

    ranked: tuple[TopicScore, ...]
    routed: tuple[TopicScore, ...]
    method: str  # "model" or "keywords"

    @property
    def topics(self) -> list[str]:
        return [t.topic for t in self.routed]


def routing_from_scores(scores: Sequence[float], method: str, margin: float | None = None) -> Routing:
    """`scores` in TOPICS order; the best topic is routed if it scored above zero."""
    margin = settings.ROUTER_MARGIN if margin is None else margin
    ranked = tuple(
        sorted((TopicScore(t, float(s)) for t, s in zip(TOPICS, scores, strict=True)), key=lambda t: -t.score)
    )
    routed = [ranked[0]] if ranked[0].score > 0 else []
    if routed and ranked[1].score > 0 and ranked[0].score - ranked[1].score <= margin:
        routed.append(ranked[1])
    return Routing(ranked, tuple(routed), method)


# --- The labelled data -------------------------------------------------------------------------


def read_examples(path: Path) -> list[Example]:
    """JSON Lines of {"question", "topics": [primary, maybe secondary]}."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        topics = tuple(row["topics"])
        if not topics or any(t not in TOPICS for t in topics):
            raise ValueError(f"{path.name} line {number}: topics must be some of {', '.join(TOPICS)}")
        examples.append(Example(str(row["question"]), topics))
    return examples


def read_descriptions(path: Path = DESCRIPTIONS_FILE) -> dict[str, str]:
    descriptions = json.loads(path.read_text(encoding="utf-8"))
    return {t: str(descriptions[t]) for t in TOPICS}


def targets(examples: Sequence[Example]) -> np.ndarray:
    """Each example's target distribution over TOPICS."""
    import numpy as np

    result = np.zeros((len(examples), len(TOPICS)))
    for row, example in enumerate(examples):
        first = TOPICS.index(example.primary)
        if len(example.topics) == 1:
            result[row, first] = 1.0
        else:
            result[row, first] = 1.0 - SECONDARY_SHARE
            result[row, TOPICS.index(example.topics[1])] = SECONDARY_SHARE
    return result


def train_with_descriptions(
    question_vectors: np.ndarray, question_targets: np.ndarray, description_vectors: np.ndarray
) -> TopicModel:
    """The model for these questions, each topic's description joining the head's training as
    one more example of it."""
    import numpy as np

    return train_model(question_vectors, question_targets, description_vectors, np.eye(len(TOPICS)))


def fit(examples: Sequence[Example], descriptions: dict[str, str], timeout: float) -> TopicModel:
    """A model trained on these examples; embeds them (EmbeddingError after `timeout` seconds)."""
    import numpy as np

    texts = [e.question for e in examples] + [descriptions[t] for t in TOPICS]
    vectors = np.array(embeddings.embed(texts, timeout=timeout))
    return train_with_descriptions(vectors[: len(examples)], targets(examples), vectors[len(examples) :])


# --- This process's router ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    key: str
    model: TopicModel


_loaded: _Loaded | None = None
_lock = threading.Lock()


@cache
def _data_hash() -> str:
    settings_text = (
        f"format {ROUTER_FORMAT}, {router_model.L2}, {router_model.ITERATIONS}, {router_model.LEARNING_RATE}, "
        f"{SECONDARY_SHARE}"
    )
    digest = hashlib.sha256(settings_text.encode())
    for path in (TRAIN_FILE, DESCRIPTIONS_FILE):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _key() -> str:
    return embeddings.safe_name(f"{embeddings.model_id()}-{_data_hash()}")


def _kept_path(key: str) -> Path:
    return Path(settings.VAR_DIR) / "router" / f"{key}.npz"


def shipped_path() -> Path:
    """Where the model for this embedding model and training data ships."""
    return SHIPPED_DIR / f"{_key()}.npz"


def build_shipped(timeout: float) -> Path:
    """Train the model and write it to SHIPPED_DIR, replacing older ones of this embedding model."""
    path = shipped_path()
    _write_cache(path, fit(read_examples(TRAIN_FILE), read_descriptions(), timeout))
    prefix = embeddings.safe_name(embeddings.model_id())
    for old in SHIPPED_DIR.glob(f"{prefix}-*.npz"):
        if old != path:
            old.unlink()
    return path


def get_model(timeout: float) -> TopicModel:
    """The trained model for this embedding model: in memory, else from the cache file, else
    trained now (EmbeddingError when that cannot finish within `timeout` seconds)."""
    key, loaded = _key(), _loaded
    if loaded is not None and loaded.key == key:
        return loaded.model
    if not _lock.acquire(timeout=max(timeout, 0)):
        raise EmbeddingError("the topic router is still being trained by another thread")
    try:
        return _load_or_train(key, timeout)
    finally:
        _lock.release()


def _load_or_train(key: str, timeout: float) -> TopicModel:
    global _loaded
    if _loaded is not None and _loaded.key == key:
        return _loaded.model
    model = _read_cache(SHIPPED_DIR / f"{key}.npz") or _read_cache(_kept_path(key))
    if model is None:
        model = fit(read_examples(TRAIN_FILE), read_descriptions(), timeout)
        _write_cache(_kept_path(key), model)
    _loaded = _Loaded(key, model)
    return model


def _read_cache(path: Path) -> TopicModel | None:
    import numpy as np

    try:
        with np.load(path) as data:
            head = LinearHead(data["weights"], data["bias"])
            vote = NeighbourVote(data["vote_vectors"].astype(np.float32), data["vote_goal"])
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign file: train again and replace it
        log.warning("ignoring the topic router cache %s: %s", path, exc)
        return None
    topics, dimensions = len(TOPICS), head.weights.shape[0]
    shapes_agree = (
        head.weights.shape == (dimensions, topics)
        and head.bias.shape == (topics,)
        and vote.vectors.shape[1:] == (dimensions,)
        and vote.goal.shape == (len(vote.vectors), topics)
        and len(vote.vectors) > 0
    )
    return TopicModel(head, vote) if shapes_agree else None


def _write_cache(path: Path, model: TopicModel) -> None:
    """Atomically, so workers starting together never read half a file; a read-only VAR_DIR only
    costs the next process a training run."""
    import numpy as np

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            tmp,
            weights=model.head.weights,
            bias=model.head.bias,
            vote_vectors=model.vote.vectors.astype(np.float16),  # half the size, the same votes
            vote_goal=model.vote.goal,
        )
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep the topic router in %s: %s", path, exc)


def route_vector(vector: Sequence[float], timeout: float) -> Routing:
    """The question's topics from its embedding (EmbeddingError if the router cannot be had)."""
    import numpy as np

    model = get_model(timeout)
    row = np.asarray(vector, dtype=np.float64)
    if row.shape != (model.dimensions,):
        raise EmbeddingError(f"the router expects {model.dimensions} dimensions, got {row.shape}")
    return routing_from_scores(model.probabilities(row[None, :])[0], "model")


def route_keywords(question: str) -> Routing:
    """Without the embedding model: topic words in the question (rag.passages.TOPIC_WORDS)."""
    counts = topic_scores(question)
    total = sum(counts.values()) or 1.0
    return routing_from_scores([counts[t] / total for t in TOPICS], "keywords")
