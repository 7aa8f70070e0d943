"""The retrieval seam the pipeline calls: the passages of a poem (and related ones) for a question.

The question is embedded once and routed to its topics (rag/router.py); the drawn poem's own
passages come in that order (the routed topics' advice first, then the rest by similarity to the
question), then RAG_RELATED_K passages on the routed topics from its temple's other poems. All
within RAG_TIMEOUT and the task's deadline. The degradation ladder, each rung saying why:

* Chroma down, slow or its breaker open, or the poem not indexed as it reads now: the poem's
  database text, still routed and ranked by the embedding model, which needs no Chroma
  (`rag_unavailable`, `rag_breaker_open`, `poem_not_indexed`);
* the embedding model unavailable too: topic words in the question rank the database text.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings

from fortune_project.resilience.breakers import BreakerOpen, get_breaker
from fortune_project.resilience.bulkhead import Bulkhead
from fortune_project.resilience.deadlines import BudgetSpent, Deadline
from rag import chroma_client, embeddings, index, poem_vectors, related, router
from rag.chroma_client import ChromaBreakerOpen, ChromaUnavailable, Hit
from rag.embeddings import EmbeddingError
from rag.models import Poem, Temple
from rag.passages import Passage, keyword_passages, poem_passages
from rag.router import Routing, TopicScore

log = logging.getLogger(__name__)

RAG_UNAVAILABLE = "rag_unavailable"
RAG_BREAKER_OPEN = "rag_breaker_open"
POEM_NOT_INDEXED = "poem_not_indexed"


_FAILURES = (ChromaUnavailable, EmbeddingError, BudgetSpent)


@dataclass
class Retrieval:
    passages: list[Passage]
    degraded_reasons: list[str] = field(default_factory=list)
    topics: list[TopicScore] = field(default_factory=list)  # the routed topics, best first


@dataclass
class _Progress:
    """What the semantic path got before any failure: the router needs only the question vector."""

    tried_embedding: bool = False
    vector: list[float] | None = None
    routing: Routing | None = None


def retrieve(question: str, poem: Poem, deadline: Deadline) -> Retrieval:
    """The poem's own passages, the routed topics' advice first, then RAG_RELATED_K from its
    temple's other poems."""
    budget = deadline.stage("retrieval", settings.RAG_TIMEOUT)  # DeadlineExceeded ends the task
    progress = _Progress()
    try:
        own, others = get_breaker("rag").call(_semantic, question, poem, budget, progress)
    except (BreakerOpen, ChromaBreakerOpen) as exc:
        log.info("retrieval for poem %s skipped Chroma: %s", poem.id, exc)
        return _from_text(question, poem, budget, progress, RAG_BREAKER_OPEN)
    except _FAILURES as exc:
        log.warning("retrieval for poem %s fell back to the poem's text: %s", poem.id, exc)
        return _from_text(question, poem, budget, progress, RAG_UNAVAILABLE)
    if own is None:
        log.warning("poem %s is missing from the index or out of date; run rag_reindex", poem.id)
        fallback = _from_text(question, poem, budget, progress, POEM_NOT_INDEXED)
        return Retrieval(fallback.passages + others, fallback.degraded_reasons, fallback.topics)
    assert progress.routing is not None  # _semantic routed before it ranked
    return Retrieval(own + others, [], list(progress.routing.routed))


def _semantic(
    question: str, poem: Poem, budget: Deadline, progress: _Progress
) -> tuple[list[Passage] | None, list[Passage]]:
    progress.tried_embedding = True
    progress.vector = embeddings.embed_one(question, timeout=budget.for_call("embeddings"))
    progress.routing = router.route_vector(progress.vector, timeout=budget.for_call("router"))
    vectors = poem_vectors.indexed(poem, budget)
    others = _related_passages(progress.vector, poem, progress.routing, budget)
    own = poem_vectors.rank(vectors, progress.vector, progress.routing) if vectors is not None else None
    return own, others


def _from_text(question: str, poem: Poem, budget: Deadline, progress: _Progress, reason: str) -> Retrieval:
    """The poem's database text: ranked by the router and the embedding model when they can
    still answer, else by topic words in the question."""
    try:
        passages, routing = _ranked_here(question, poem, budget, progress)
    except (EmbeddingError, BudgetSpent) as exc:
        log.warning("ranking poem %s by topic words: %s", poem.id, exc)
        routing = router.route_keywords(question)
        passages = keyword_passages(question, poem)
    return Retrieval(passages, [reason], list(routing.routed))


def _ranked_here(question: str, poem: Poem, budget: Deadline, progress: _Progress) -> tuple[list[Passage], Routing]:
    vector = progress.vector
    if vector is None:
        # Not tried yet only when a breaker refused the whole stage. The local model is asked
        # then (it cannot hang on a network); a remote embeddings endpoint may be why it opened.
        if progress.tried_embedding or not embeddings.local():
            raise EmbeddingError("no question vector")
        vector = embeddings.embed_one(question, timeout=budget.for_call("embeddings"))
    routing = progress.routing or router.route_vector(vector, timeout=budget.for_call("router"))
    return poem_vectors.rank(poem_vectors.embedded_here(poem, budget), vector, routing), routing


# Searches embedding at once in this process (SEARCH_CONCURRENCY): embedding is CPU-bound, and
# past the cap it would only slow every request down (measured: 80 parallel searches took the
# public health answer to 5.5 s), so the next search is refused at once instead.
SEARCH_SLOTS = Bulkhead("search", lambda: settings.SEARCH_CONCURRENCY)


def search(question: str, temple: Temple | None = None, k: int = 5, timeout: float | None = None) -> list[Passage]:
    """The k passages nearest to the question, across poems (of one temple if given).
    Raises ChromaUnavailable, EmbeddingError or BudgetSpent: free browsing has no poem to fall back on;
    BulkheadFull at once when SEARCH_CONCURRENCY searches are already embedding."""
    budget = Deadline.after(settings.RAG_SEARCH_TIMEOUT if timeout is None else timeout, name="search", final=False)
    seconds = budget.for_call("embeddings")
    slot = SEARCH_SLOTS.acquire()  # held until the embedding itself ends, even one abandoned at its timeout
    vector = embeddings.embed([question], timeout=seconds, release=slot.release)[0]
    where = {"temple": temple.slug} if temple else None
    hits = chroma_client.query(
        index.collection_name(), vector, n_results=k, where=where, timeout=budget.for_call("chromadb.query")
    )
    return _current(hits)


def to_passage(hit: Hit) -> Passage:
    # Cosine distance of unit vectors: 1 - distance is their cosine similarity, higher is closer.
    return Passage(int(hit.metadata["poem_id"]), str(hit.metadata["topic"]), hit.document, 1.0 - hit.distance)


def _related_passages(vector: list[float], poem: Poem, routing: Routing, budget: Deadline) -> list[Passage]:
    """RAG_RELATED_K passages on the routed topics from the temple's other poems (rag/related.py)."""
    k = settings.RAG_RELATED_K
    if k <= 0:
        return []
    candidates = related.nearest(vector, poem, routing.topics, 2 * k, budget)
    advice = dict(Poem.objects.filter(id__in={p.poem for p in candidates}).values_list("id", "advice"))
    # The database is the source of truth: a poem edited or deleted since Chroma was read drops out.
    return [p for p in candidates if (advice.get(p.poem) or {}).get(p.topic) == p.text][:k]


def _current(hits: list[Hit]) -> list[Passage]:
    """The hits whose text the database still holds: the database is the source of truth, and
    an index that outlived its database (or a poem edited since) must not leak into answers."""
    passages = [to_passage(h) for h in hits]
    poems = Poem.objects.filter(id__in={p.poem for p in passages})
    texts = {(p.poem, p.topic): p.text for poem in poems for p in poem_passages(poem)}
    return [p for p in passages if texts.get((p.poem, p.topic)) == p.text]


def search_or_unavailable(question: str, temple: Temple | None, k: int) -> list[Passage] | None:
    """`search`, or None when Chroma or the embedding backend failed or was too slow (logged).
    BulkheadFull (search saturated) goes to the caller: busy is not unavailable."""
    try:
        return search(question, temple, k)
    except _FAILURES as exc:
        log.warning("search failed: %s", exc)
        return None
