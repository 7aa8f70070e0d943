"""The web server's embeddings, computed in a child process so that they never hold its event loop.

Every request of the web process goes through one event loop, and that loop needs the process's
GIL for each step. An embedding run in one of the process's threads asks for the GIL too (for
the tokenizer, the pooling, each Python step around onnxruntime), and CPython hands it over and
waits until the asking thread has actually run, however late the operating system schedules a
busy or niced thread. Measured with `bench/abuse.py --only search` (2 cores, 80 parallel
2,000-character searches): the loop stopped for 50-85 ms while two searches embedded, and every
request that arrived meanwhile waited, the public health answer among them. A child process has
a GIL of its own: the loop then only shares the CPU with it, at EMBEDDINGS_NICE lower priority.

`ChildProcessEmbedder` is what `rag.embeddings` builds inside the web server when
WEB_EMBEDDINGS_PROCESS is on (the default): one child, started with `spawn` (a fork of a process
with running threads and an event loop is unsafe, and an onnxruntime session inherited through a
fork hangs), that loads the ONNX model once and embeds one call at a time with all its cores.
Other processes (task workers, commands, tests) keep embedding in their own threads, where no
event loop waits on them. A child that dies is replaced on the next call; the call that saw it
die gets EmbeddingError, as any failed embedding does.
"""

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from django.conf import settings

WARM_UP_TEXT = "Will my new shop do well?"
ORPHAN_CHECK_SECONDS = 1.0


class ChildProcessEmbedder:
    def __init__(self, model_id: str):
        self.model_id = model_id
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def embed(
        self, texts: Sequence[str], timeout: float, release: Callable[[], None] | None = None
    ) -> list[list[float]]:
        """Vectors for `texts`, or EmbeddingError after `timeout` seconds. `release` is called when
        the child is done with them, which may be after a timeout (the child goes on with the
        work it has started; a call still queued is cancelled)."""
        from rag.embeddings import EmbeddingError

        pool = self._executor()
        try:
            future = pool.submit(_embed, list(texts))
        except (BrokenProcessPool, RuntimeError) as exc:  # died since, or shut down with the server
            self._discard(pool)
            if release is not None:
                release()
            raise EmbeddingError(f"the embedding process is gone: {exc}") from exc
        if release is not None:
            future.add_done_callback(lambda _: release())
        try:
            return future.result(timeout)
        except FutureTimeout as exc:
            future.cancel()  # still queued: never runs; running: the child finishes, then releases
            raise EmbeddingError(f"embedding took longer than {timeout:g} s") from exc
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise EmbeddingError("the embedding process died") from exc

    def warm_up(self) -> Future:
        """Start the child and load its model now, so that the first search does not wait for it."""
        return self._executor().submit(_embed, [WARM_UP_TEXT])

    def pids(self) -> list[int]:
        """The child's pid while it runs (for the benchmarks' CPU figures)."""
        pool = self._pool
        return list(getattr(pool, "_processes", None) or {}) if pool is not None else []

    def close(self) -> None:
        """Stop the child (it exits by itself when this process ends)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(settings.EMBEDDINGS_NICE,),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


# --- in the child ----------------------------------------------------------------------------------

_child_embedder = None


def _start_child(nice: int) -> None:
    """The child's set-up: Django (settings, apps), a lower CPU priority (inherited by the threads
    onnxruntime starts later), and an end of its own should the web server die without a word."""
    import django

    django.setup()
    if nice > 0:
        os.nice(min(nice, 19))
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    """A SIGKILLed web server never tells its child (the child even holds its own end of the
    queue's pipe, so it would wait on it forever); once the child has another parent, it exits."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


def _embed(texts: list[str]) -> list[list[float]]:
    global _child_embedder
    from rag.embeddings import OnnxEmbedder

    if _child_embedder is None:
        _child_embedder = OnnxEmbedder()
    return _child_embedder.embed(texts, timeout=0)  # the parent bounds the wait
