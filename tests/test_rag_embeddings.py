import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from monitoring.drills.fake_llm import embedding as unit_vector
from monitoring.drills.fake_llm import make_server
from rag import embeddings
from rag.embeddings import EmbeddingError, OnnxEmbedder
from tests.support.processes import ROOT


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_it_embeds_texts_as_unit_vectors_of_384_dimensions():
    vectors = embeddings.embed(["A lantern burns on the pier.", "Will I pass my exam?"], timeout=30)
    assert [len(v) for v in vectors] == [384, 384]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_it_matches_the_published_model_on_a_known_pair():
    # all-MiniLM-L6-v2 scores this pair about 0.75; int8 weights stay within a few hundredths.
    food, bread, movie = embeddings.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome"], timeout=30
    )
    assert cosine(food, bread) == pytest.approx(0.75, abs=0.04)
    assert cosine(food, movie) < 0.1


def test_it_keeps_the_callers_order_across_batches_of_mixed_lengths():
    texts = [f"sentence {i} " + "word " * (i % 7) * 5 for i in range(70)]
    embedder = OnnxEmbedder(batch_size=8)
    batched = embedder.embed(texts, timeout=30)
    alone = [embedder.embed([t], timeout=30)[0] for t in texts[:10]]
    assert np.allclose(batched[:10], alone, atol=1e-4)


def test_it_reads_long_texts_up_to_256_tokens():
    head = "My question is about my career and my job at the office. "
    short, long = embeddings.embed([head, head + "filler words " * 100 + "and also about my marriage."], timeout=30)
    assert cosine(short, long) < 0.99  # the tail beyond 128 tokens still counts


def test_a_missing_model_file_is_an_embedding_error(monkeypatch, tmp_path):
    monkeypatch.setattr(embeddings, "onnx_model_files", lambda: (tmp_path / "model.onnx", tmp_path / "tok.json"))
    with pytest.raises(EmbeddingError, match="cannot load"):
        OnnxEmbedder().embed(["x"], timeout=30)


def test_it_keeps_one_model_per_process_and_opens_a_new_one_after_a_fork(monkeypatch):
    first = embeddings.get_embedder()
    assert embeddings.get_embedder() is first
    monkeypatch.setattr(embeddings, "_slot", embeddings._slot)  # restored afterwards
    monkeypatch.setattr(embeddings.os, "getpid", lambda: -1)  # what a forked worker would see
    assert embeddings.get_embedder() is not first


def test_importing_the_rag_modules_loads_neither_the_model_nor_chroma():
    code = (
        "import django, sys; django.setup();"
        "import chat.pipeline, rag.embeddings, rag.index, rag.retrieval, rag.chroma_client, rag.views;"
        "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'chromadb', 'torch', 'sentence_transformers')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_model_id_names_the_backend_and_model(settings):
    assert embeddings.model_id() == "all-MiniLM-L6-v2-onnx-int8"
    settings.EMBEDDINGS = "openai"
    settings.EMBEDDINGS_MODEL = "text-embedding-3-small"
    assert embeddings.model_id() == "openai-text-embedding-3-small"


@pytest.fixture
def openai_endpoint(settings):
    """The drills' fake server in-process, embeddings settings pointing at it; yields its State."""
    server = make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    settings.EMBEDDINGS = "openai"
    settings.EMBEDDINGS_BASE_URL = f"http://127.0.0.1:{server.server_port}/v1"
    settings.OPENAI_API_KEY = "test-key"
    yield server.state
    server.shutdown()  # also wakes a handler hung in hang mode
    server.server_close()


def test_the_openai_backend_embeds_through_an_openai_compatible_endpoint(openai_endpoint):
    # Rows answered out of order, unnormalised: the client must sort by index and normalise.
    openai_endpoint.update({"embeddings_mode": "raw"})
    first, second = embeddings.embed(["one", "two"], timeout=30)
    assert np.allclose(first, unit_vector("one"), atol=1e-6)
    assert np.allclose(second, unit_vector("two"), atol=1e-6)


def test_a_slow_openai_endpoint_fails_within_the_timeout(openai_endpoint):
    openai_endpoint.update({"embeddings_mode": "hang"})
    started = time.monotonic()
    with pytest.raises(EmbeddingError):
        embeddings.embed(["one"], timeout=0.5)
    assert time.monotonic() - started < 3


def test_a_malformed_openai_reply_is_an_embedding_error(openai_endpoint):
    openai_endpoint.update({"embeddings_mode": "garbage"})
    with pytest.raises(EmbeddingError):
        embeddings.embed(["one"], timeout=5)


def test_a_local_embedder_slower_than_the_timeout_fails_within_it(monkeypatch):
    monkeypatch.setattr(OnnxEmbedder, "embed", lambda self, texts, timeout: time.sleep(5))
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match="took longer"):
        embeddings.embed(["one"], timeout=0.3)
    assert time.monotonic() - started < 2


FORK_AFTER_USE = """
import multiprocessing, django
django.setup()
from monitoring.drills.fake_llm import embedding as unit_vector
from monitoring.drills.fake_llm import make_server
from rag import embeddings
embeddings.embed(["the parent uses the model before forking, as a warmed-up server might"], timeout=30)

def child(queue):
    queue.put(len(embeddings.embed(["the forked worker embeds"], timeout=30)[0]))

context = multiprocessing.get_context("fork")
queue = context.Queue()
worker = context.Process(target=child, args=(queue,))
worker.start()
worker.join(30)
if worker.is_alive():
    worker.kill()
    print("hung")
else:
    print(queue.get())
"""


@pytest.mark.slow
def test_a_worker_forked_after_its_parent_used_the_model_embeds_without_hanging():
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_USE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "384"
