"""The retrieval seam the pipeline calls: the passages of a poem (and related ones) for a question.

Semantic retrieval over ChromaDB, bounded by RAG_TIMEOUT and the task's deadline; when Chroma or
the embedding backend fails, the poem's own database text ranked by keywords answers instead and
the result says so (`rag_unavailable`).
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings

from fortune_project.resilience.breakers import BreakerOpen, get_breaker
from fortune_project.resilience.deadlines import BudgetSpent, Deadline
from rag import chroma_client, embeddings, index
from rag.chroma_client import ChromaBreakerOpen, ChromaUnavailable, Hit
from rag.embeddings import EmbeddingError
from rag.models import TOPICS, Poem, Temple
from rag.passages import Passage, keyword_passages, poem_passages

log = logging.getLogger(__name__)

RAG_UNAVAILABLE = "rag_unavailable"
RAG_BREAKER_OPEN = "rag_breaker_open"
POEM_NOT_INDEXED = "poem_not_indexed"


_FAILURES = (ChromaUnavailable, EmbeddingError, BudgetSpent)


@dataclass
class Retrieval:
    passages: list[Passage]
    degraded_reasons: list[str] = field(default_factory=list)


def retrieve(question: str, poem: Poem, deadline: Deadline) -> Retrieval:
    """The poem's own passages, most relevant first, then RAG_RELATED_K from its temple's other poems."""
    budget = deadline.stage("retrieval", settings.RAG_TIMEOUT)  # DeadlineExceeded ends the task
    try:
        own, related = get_breaker("rag").call(_semantic, question, poem, budget)
    except (BreakerOpen, ChromaBreakerOpen) as exc:
        log.info("retrieval for poem %s skipped Chroma: %s", poem.id, exc)
        return Retrieval(keyword_passages(question, poem), [RAG_BREAKER_OPEN])
    except _FAILURES as exc:
        log.warning("retrieval for poem %s fell back to keywords: %s", poem.id, exc)
        return Retrieval(keyword_passages(question, poem), [RAG_UNAVAILABLE])
    if own is None:
        log.warning("poem %s is missing from the index or out of date; run rag_reindex", poem.id)
        return Retrieval(keyword_passages(question, poem) + related, [POEM_NOT_INDEXED])
    return Retrieval(own + related)


def _semantic(question: str, poem: Poem, budget: Deadline) -> tuple[list[Passage] | None, list[Passage]]:
    vector = embeddings.embed_one(question, timeout=budget.for_call("embeddings"))
    return _own_passages(vector, poem, budget), _related_passages(vector, poem, budget)


def search(question: str, temple: Temple | None = None, k: int = 5, timeout: float | None = None) -> list[Passage]:
    """The k passages nearest to the question, across poems (of one temple if given).
    Raises ChromaUnavailable, EmbeddingError or BudgetSpent: free browsing has no poem to fall back on."""
    budget = Deadline.after(settings.RAG_SEARCH_TIMEOUT if timeout is None else timeout, name="search", final=False)
    vector = embeddings.embed_one(question, timeout=budget.for_call("embeddings"))
    where = {"temple": temple.slug} if temple else None
    hits = chroma_client.query(
        index.collection_name(), vector, n_results=k, where=where, timeout=budget.for_call("chromadb.query")
    )
    return _current(hits)


def to_passage(hit: Hit) -> Passage:
    # Cosine distance of unit vectors: 1 - distance is their cosine similarity, higher is closer.
    return Passage(int(hit.metadata["poem_id"]), str(hit.metadata["topic"]), hit.document, 1.0 - hit.distance)


def _own_passages(vector: list[float], poem: Poem, budget: Deadline) -> list[Passage] | None:
    """Ranked by Chroma; None unless the index holds exactly the poem's current text."""
    hits = chroma_client.query(
        index.collection_name(),
        vector,
        n_results=len(TOPICS) + 2,
        where={"poem_id": poem.id},
        timeout=budget.for_call("chromadb.query"),
    )
    ranked = [to_passage(h) for h in hits]
    current = {p.topic: p.text for p in poem_passages(poem)}
    return ranked if {p.topic: p.text for p in ranked} == current else None


def _related_passages(vector: list[float], poem: Poem, budget: Deadline) -> list[Passage]:
    if settings.RAG_RELATED_K <= 0:
        return []
    where = {"$and": [{"temple": poem.temple.slug}, {"poem_id": {"$ne": poem.id}}]}
    hits = chroma_client.query(
        index.collection_name(),
        vector,
        n_results=settings.RAG_RELATED_K,
        where=where,
        timeout=budget.for_call("chromadb.query"),
    )
    return _current(hits)


def _current(hits: list[Hit]) -> list[Passage]:
    """The hits whose text the database still holds: the database is the source of truth, and
    an index that outlived its database (or a poem edited since) must not leak into answers."""
    passages = [to_passage(h) for h in hits]
    poems = Poem.objects.filter(id__in={p.poem for p in passages})
    texts = {(p.poem, p.topic): p.text for poem in poems for p in poem_passages(poem)}
    return [p for p in passages if texts.get((p.poem, p.topic)) == p.text]


def search_or_unavailable(question: str, temple: Temple | None, k: int) -> list[Passage] | None:
    """`search`, or None when Chroma or the embedding backend failed or was too slow (logged)."""
    try:
        return search(question, temple, k)
    except _FAILURES as exc:
        log.warning("search failed: %s", exc)
        return None
