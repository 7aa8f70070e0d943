"""The drawn poem's own passages as vectors, and their order for a question.

A poem has at most eleven passages (verse, meaning, nine topics), so ranking them needs no
nearest-neighbour search: their stored vectors come from Chroma by id once, are kept in this
process per poem version (a hash of the exact text embedded), and each question costs one small
matrix product (keyed by store, collection and poem, so no other index's answer is reused).
When Chroma cannot help (down, or the poem not indexed as it reads now) the same
vectors are embedded here from the database text, so the router's order survives on that rung.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fortune_project.resilience.deadlines import Deadline
from rag import chroma_client, embeddings, index
from rag.models import Poem
from rag.passages import Passage
from rag.router import Routing

if TYPE_CHECKING:  # numpy is imported where used, so importing this module loads no BLAS
    import numpy as np

# Poems kept per process: 11 vectors of 384 floats each, so 2048 poems are about 35 MB.
MAX_POEMS = 2048


@dataclass(frozen=True)
class PoemVectors:
    passages: tuple[Passage, ...]  # the poem's current text
    matrix: np.ndarray  # one unit vector per passage, same order
    indexed: bool  # the vectors came from an index holding exactly this text


_cache: OrderedDict[tuple[str, str, int], tuple[str, PoemVectors]] = OrderedDict()
_lock = threading.Lock()


def _version(docs: Sequence[index.Document]) -> str:
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(f"{doc.id}\0{doc.text}\0{doc.embed_text}\0".encode())
    return digest.hexdigest()


def _cached(key: tuple[str, str, int], version: str) -> PoemVectors | None:
    with _lock:
        entry = _cache.get(key)
        if entry is None or entry[0] != version:
            return None
        _cache.move_to_end(key)
        return entry[1]


def _keep(key: tuple[str, str, int], version: str, vectors: PoemVectors) -> PoemVectors:
    with _lock:
        _cache[key] = (version, vectors)
        _cache.move_to_end(key)
        while len(_cache) > MAX_POEMS:
            _cache.popitem(last=False)
    return vectors


def _build(docs: Sequence[index.Document], poem: Poem, rows: Sequence[Sequence[float]], indexed: bool) -> PoemVectors:
    import numpy as np

    passages = tuple(Passage(poem.id, d.metadata["topic"], d.text) for d in docs)
    return PoemVectors(passages, np.asarray(rows, dtype=np.float32), indexed)


def indexed(poem: Poem, budget: Deadline) -> PoemVectors | None:
    """The poem's stored vectors; None unless the index holds exactly its current text.
    Raises ChromaUnavailable (or BudgetSpent) like any Chroma call."""
    docs = index.documents(poem)
    key, version = (chroma_client.store(), index.collection_name(), poem.id), _version(docs)
    found = _cached(key, version)
    if found is not None and found.indexed:
        return found
    stored = chroma_client.get(key[1], ids=[d.id for d in docs], timeout=budget.for_call("chromadb.get"))
    by_id = {s.id: s for s in stored}
    if any(d.id not in by_id or by_id[d.id].document != d.text for d in docs):
        return None
    return _keep(key, version, _build(docs, poem, [by_id[d.id].embedding for d in docs], indexed=True))


def embedded_here(poem: Poem, budget: Deadline) -> PoemVectors:
    """The poem's vectors without Chroma: cached, else embedded now from its database text
    (EmbeddingError without the model, BudgetSpent without time)."""
    docs = index.documents(poem)
    key, version = (chroma_client.store(), index.collection_name(), poem.id), _version(docs)
    found = _cached(key, version)
    if found is not None:
        return found
    rows = embeddings.embed([d.embed_text for d in docs], timeout=budget.for_call("embeddings"))
    return _keep(key, version, _build(docs, poem, rows, indexed=False))


def forget() -> None:
    """Empty this process's cache (tests)."""
    with _lock:
        _cache.clear()


def rank(vectors: PoemVectors, question: Sequence[float], routing: Routing) -> list[Passage]:
    """Scored by cosine similarity to the question, ordered by `by_routing`."""
    import numpy as np

    scores = vectors.matrix @ np.asarray(question, dtype=np.float32)
    return by_routing([replace(p, score=float(s)) for p, s in zip(vectors.passages, scores, strict=True)], routing)


def by_routing(passages: Sequence[Passage], routing: Routing) -> list[Passage]:
    """The advice on the routed topics first, best topic first; then the rest, highest score
    first. The verse and the meaning follow the routed advice, however well they score: the
    question asked about its topic, and the advice is what answers it."""
    topics = routing.topics
    first = [p for topic in topics for p in passages if p.topic == topic]
    rest = sorted((p for p in passages if p.topic not in topics), key=lambda p: -p.score)
    return first + rest
