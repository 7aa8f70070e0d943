"""Embedding runs below the web process's CPU priority (EMBEDDINGS_NICE), in its own thread only."""

import os
import threading

import pytest

from rag import embeddings

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="niceness is a POSIX feature")


def niceness_in_a_thread(steps: int) -> tuple[int, int]:
    """(the thread's niceness before, after lower_priority(steps))."""
    seen: list[int] = []

    def work() -> None:
        tid = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))
        embeddings.lower_priority(steps)
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return seen[0], seen[1]


def test_an_embedding_thread_runs_nicer_and_the_caller_does_not():
    before, after = niceness_in_a_thread(5)
    assert after == min(before + 5, 19)
    main = threading.get_native_id()
    assert os.getpriority(os.PRIO_PROCESS, main) == before  # niceness is per thread on Linux


def test_zero_leaves_the_priority_alone():
    before, after = niceness_in_a_thread(0)
    assert after == before


def test_the_embedding_itself_runs_in_the_nicer_thread(settings, monkeypatch):
    settings.EMBEDDINGS_NICE = 7
    seen: list[int] = []

    class Probe:
        model_id = "probe"

        def embed(self, texts, timeout):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return [[1.0] for _ in texts]

    monkeypatch.setattr(embeddings, "get_embedder", lambda: Probe())
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert embeddings.embed(["love"], timeout=5) == [[1.0]]
    assert seen == [min(base + 7, 19)]
