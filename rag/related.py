"""Related passages: the temple's other poems' advice on the routed topics, nearest first.

A temple holds tens to a few hundred poems, so its advice on one topic is at most a few hundred
vectors, and ranking them here is one small matrix product. A filtered Chroma query for the same
answer costs several bare queries (measured 16 ms against 5.5 ms at 10k passages), and it was
most of what retrieval cost. So each temple's stored vectors for a topic are read from Chroma
once (`get`, no search) and reused for RAG_CACHE_SECONDS, or until an embedded store's next write.
The caller still checks every chosen passage against the database, the source of truth, so an
edited or deleted poem never leaks in; a poem loaded meanwhile joins within RAG_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.conf import settings

from fortune_project.resilience.deadlines import Deadline
from rag import chroma_client, index
from rag.models import Poem
from rag.passages import Passage

if TYPE_CHECKING:  # numpy is imported where used, so importing this module loads no BLAS
    import numpy as np


@dataclass(frozen=True)
class _TopicVectors:
    passages: tuple[Passage, ...]
    poems: np.ndarray  # each passage's poem id
    matrix: np.ndarray  # one unit vector per passage
    version: str  # the store's index version when read
    read_at: float


_cache: dict[tuple[str, str, str, str], _TopicVectors] = {}
_lock = threading.Lock()
clock: Callable[[], float] = time.monotonic  # replaceable in tests


def nearest(vector: Sequence[float], poem: Poem, topics: Sequence[str], count: int, budget: Deadline) -> list[Passage]:
    """Up to `count` advice passages on `topics` from the other poems of `poem`'s temple, most
    similar to the question first. Raises ChromaUnavailable (or BudgetSpent) when it must read."""
    import numpy as np

    question = np.asarray(vector, dtype=np.float32)
    candidates: list[Passage] = []
    for topic in dict.fromkeys(topics):
        stored = _topic_vectors(poem.temple.slug, topic, budget)
        scores = stored.matrix @ question if stored.passages else np.zeros(0, dtype=np.float32)
        scores[stored.poems == poem.id] = -np.inf  # the drawn poem's own advice is not "related"
        best = np.argsort(-scores)[: count + 1]
        candidates += [replace(stored.passages[i], score=float(scores[i])) for i in best if np.isfinite(scores[i])]
    candidates.sort(key=lambda p: -p.score)
    return candidates[:count]


def _topic_vectors(temple: str, topic: str, budget: Deadline) -> _TopicVectors:
    import numpy as np

    key = (chroma_client.store(), index.collection_name(), temple, topic)
    version = chroma_client.index_version()
    with _lock:
        found = _cache.get(key)
    if found is not None and found.version == version and clock() - found.read_at < settings.RAG_CACHE_SECONDS:
        return found
    where = {"$and": [{"temple": temple}, {"topic": topic}]}
    rows = chroma_client.get(key[1], where=where, timeout=budget.for_call("chromadb.get"))
    passages = tuple(Passage(int(r.metadata["poem_id"]), topic, r.document) for r in rows)
    # No passage on this topic at this temple (a poem file without it): an empty matrix, not an
    # error (numpy cannot reshape an empty list into rows of unknown width).
    matrix = (
        np.asarray([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), -1)
        if rows
        else np.zeros((0, 0), dtype=np.float32)
    )
    poems = np.asarray([p.poem for p in passages], dtype=np.int64)
    fresh = _TopicVectors(passages, poems, matrix, version, clock())
    with _lock:
        _cache[key] = fresh
    return fresh


def forget() -> None:
    """Empty this process's cache (tests, benchmarks)."""
    with _lock:
        _cache.clear()
