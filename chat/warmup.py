"""A task worker's warm-up: load the embedding model, open the index and build the LLM client
before the first question, not during it.

Called from Django-Q2's post_spawn (chat/signals.py), which runs inside each worker right after
the fork, before it reads its first task and before it records itself idle: a worker shows as
ready only once it is warm. Never called in the qcluster parent: a session inherited through a
fork hangs the child (shared/NOTES.md), which is why rag.embeddings loads lazily, per process.
Measured before this: a worker's first task took about 2.4 s longer (docs/benchmarks.md).
The query goes through the chromadb breaker like any other: a Chroma that is down at start
counts as one failure per starting worker, which is what it is.
"""

import logging
import socket
import time

from django.conf import settings

from rag import chroma_client, embeddings, index, router

log = logging.getLogger(__name__)

WARMUP_TEXT = "Will the lantern keep burning until the boats come home?"


def warm_up() -> float:
    """Everything a worker's first task would otherwise do once: import the task's modules,
    build the LLM client and its reply parser (no call is made), load the embedding model and
    the topic router (its 2 MB of labelled question vectors), and run one query on the index
    (opening this worker's Chroma client). Seconds taken. Never
    raises: a worker that could not warm up still works, and its first task pays the rest."""
    started = time.monotonic()
    try:
        _prepare_llm_client()
        vector = embeddings.embed_one(WARMUP_TEXT, timeout=settings.RAG_TIMEOUT)
        router.route_vector(vector, timeout=settings.RAG_TIMEOUT)
        chroma_client.query(index.collection_name(), vector, n_results=1, where=None, timeout=settings.RAG_TIMEOUT)
    except Exception as exc:  # the model or the index unavailable: the first task falls back as usual
        log.warning("worker warm-up incomplete (%s); the first task will finish it", exc)
    elapsed = time.monotonic() - started
    log.info("worker warmed up in %.2f s", elapsed)
    return elapsed


def _prepare_llm_client() -> None:
    """The task's module tree, then the openai client's whole request path (its HTTP pool,
    platform headers, request and reply models), all built lazily on first use: measured about
    0.07 s on a quiet machine and 0.3 s on a busy one. Nothing reaches the LLM: the warm-up
    request goes to a local port that is bound but not listening, so it is refused at once."""
    import openai
    from openai.types.chat import ChatCompletionChunk

    from chat import llm, llm_endpoints, pipeline  # noqa: F401  (pipeline: imported for its module tree)

    ChatCompletionChunk.model_validate(
        {
            "id": "warm-up",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "warm-up",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "."}, "finish_reason": None}],
        }
    )
    for endpoint in llm_endpoints.fallbacks():  # LLM failover: their clients ready too (no call is made)
        llm.client(endpoint)
    if not llm.llm_configured():
        return
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # ours until closed, and never listening
        port = refusing.getsockname()[1]
        try:
            llm.client().with_options(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0).chat.completions.create(
                model=settings.LLM_MODEL, messages=[{"role": "user", "content": WARMUP_TEXT}], stream=True, timeout=2
            )
        except openai.APIError:
            pass  # the refusal we asked for
