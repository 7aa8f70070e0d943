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

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from django.conf import settings

log = logging.getLogger(__name__)

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
        """Vectors for `texts`, or EmbeddingError after `timeout` seconds or on any failure.
        `release` is called exactly when the child is done with them, which may be after the
        timeout: work the pool has handed to the child (the one it runs and the one queued
        behind it) is embedded anyway; only work still waiting in this process is cancelled.
        On any failure before the work reached the pool, `release` is called at once."""
        from rag.embeddings import EmbeddingError

        handed_over = False
        try:
            pool = self._executor()
            try:
                future = pool.submit(_embed, list(texts))
            except (BrokenProcessPool, RuntimeError) as exc:  # died since, or shut down with the server
                self._discard(pool)
                raise EmbeddingError(f"the embedding process is gone: {exc}") from exc
            if release is not None:
                future.add_done_callback(lambda _: release())
            handed_over = True
            try:
                return future.result(timeout)
            except FutureTimeout as exc:
                future.cancel()
                raise EmbeddingError(f"embedding took longer than {timeout:g} s") from exc
            except BrokenProcessPool as exc:
                self._discard(pool)
                raise EmbeddingError("the embedding process died") from exc
        except EmbeddingError:
            raise
        except Exception as exc:  # no child could start (EMFILE, ENOMEM), a cancelled call, ...
            raise EmbeddingError(f"embedding in the child process failed: {exc!r}") from exc
        finally:
            if not handed_over and release is not None:
                release()

    def warm_up(self) -> None:
        """Start the child and load its model now, so that the first search does not wait for it."""
        self._executor().submit(_embed, [WARM_UP_TEXT]).add_done_callback(_log_warm_up)

    def pids(self) -> list[int]:
        """The child's pid while it runs (the tests kill it to see a replacement start)."""
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
                    initargs=(os.getpid(), settings.EMBEDDINGS_NICE),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool, once: the next call starts a new child."""
        with self._lock:
            if self._pool is not pool:
                return  # another call saw it break first and has shut it down
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


# --- in the child ----------------------------------------------------------------------------------

_child_embedder = None


def _start_child(parent: int, nice: int) -> None:
    """The child's set-up: Django (settings, apps), a lower CPU priority (inherited by the threads
    onnxruntime starts later), and an end of its own should the web server die without a word.
    Ctrl-C reaches the whole terminal's process group: the web server's shutdown ends the child."""
    import django

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True).start()
    django.setup()
    if nice > 0:
        os.nice(min(nice, 19))


def _exit_when_orphaned(parent: int) -> None:
    """A SIGKILLed web server never tells its child (the child even holds its own end of the
    queue's pipe, so it would wait on it forever); once the child has another parent, it exits."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


def _log_warm_up(future: Future) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.warning("the embedding child could not warm up (%s); the first search will try again", error)


def _embed(texts: list[str]) -> list[list[float]]:
    global _child_embedder
    from rag.embeddings import OnnxEmbedder

    if _child_embedder is None:
        _child_embedder = OnnxEmbedder()
    return _child_embedder.embed(texts, timeout=0)  # the parent bounds the wait
