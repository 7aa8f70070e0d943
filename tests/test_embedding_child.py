"""The web server embeds in a child process of its own (rag/embedding_child.py), so that the
model's work never takes the GIL its event loop needs; every other process embeds in its threads."""

import json
import os
import signal
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fortune_project import webserver
from rag import embeddings
from rag.embedding_child import ChildProcessEmbedder
from rag.embeddings import EmbeddingError, OnnxEmbedder
from tests.support.cluster import prepare
from tests.support.processes import Process, base_env, free_port, port_open, run_manage, wait_until

TEXTS = ["Will my new shop do well?", "A lantern burns on the pier.", "Is this the right year to marry?"]
LONG = ["Will my long journey across the sea end well? " * 40] * 96  # seconds of model time


@pytest.fixture
def child():
    embedder = ChildProcessEmbedder(OnnxEmbedder.model_id)
    yield embedder
    embedder.close()


def test_the_child_gives_the_vectors_this_process_would(child):
    assert np.allclose(child.embed(TEXTS, timeout=60), OnnxEmbedder().embed(TEXTS, timeout=30), atol=1e-5)
    assert child.pids() and os.getpid() not in child.pids()


def test_a_slow_embedding_is_an_error_at_its_timeout_and_keeps_its_slot_until_the_child_is_done(child):
    child.embed(["warm"], timeout=60)
    released = threading.Event()
    with pytest.raises(EmbeddingError, match="longer than"):
        child.embed(LONG, timeout=0.3, release=released.set)  # handed to the child well before
    assert not released.is_set()  # the child is still at it: the slot stays taken
    assert released.wait(60)


def test_a_killed_child_fails_one_call_and_the_next_call_gets_a_new_child(child):
    child.embed(["warm"], timeout=60)
    [pid] = child.pids()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, what="the killed child's end")
    with pytest.raises(EmbeddingError):
        child.embed(TEXTS, timeout=60)
    assert len(child.embed(TEXTS, timeout=60)) == 3
    assert child.pids() != [pid]


def test_only_the_web_server_embeds_in_a_child(monkeypatch, settings):
    config = ("onnx", "", "", "")
    assert isinstance(embeddings._build(config), OnnxEmbedder)  # a worker, a command, this test
    monkeypatch.setattr(webserver, "_serving", True)
    assert isinstance(embeddings._build(config), ChildProcessEmbedder)
    settings.WEB_EMBEDDINGS_PROCESS = False
    assert isinstance(embeddings._build(config), OnnxEmbedder)


@pytest.mark.slow
def test_alices_search_on_the_web_server_is_embedded_by_its_child_and_never_by_the_server_itself(tmp_path):
    env = base_env(tmp_path)
    prepare(env, tmp_path)
    create = "from django.contrib.auth.models import User; User.objects.create_user('alice', password='alice-pw')"
    assert run_manage(["shell", "-c", create], env).returncode == 0
    port = free_port()
    server = Process(webserver.command("127.0.0.1", port), env, tmp_path / "web.log")
    try:
        wait_until(lambda: port_open(port), 60, what=f"the web server\n{server.log_path}")
        base = f"http://127.0.0.1:{port}/api/v1"
        token = post_json(f"{base}/auth/token", {"username": "alice", "password": "alice-pw"})["token"]
        search = urllib.request.Request(
            f"{base}/async-chat/poems/search?" + urllib.parse.urlencode({"q": "Will my new shop do well?"}),
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(search, timeout=60) as response:
            assert response.status == 200
        children = [pid for pid in child_pids(server.pid) if loads_onnxruntime(pid)]
        assert children, "no child of the web server has the model loaded"
        assert not loads_onnxruntime(server.pid)
    finally:
        server.stop()


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def child_pids(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            pass
    return found


def loads_onnxruntime(pid: int) -> bool:
    return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.slow
def test_the_child_ends_when_the_web_server_is_killed_outright(tmp_path):
    env = base_env(tmp_path)
    prepare(env, tmp_path)
    port = free_port()
    server = Process(webserver.command("127.0.0.1", port), env, tmp_path / "web.log")
    try:
        wait_until(lambda: port_open(port), 60, what=f"the web server\n{server.log_path}")
        wait_until(lambda: any(loads_onnxruntime(p) for p in child_pids(server.pid)), 60, what="the warm child")
        children = child_pids(server.pid)  # the embedding child, and multiprocessing's resource tracker
        os.kill(server.pid, signal.SIGKILL)
        wait_until(lambda: not any(alive(pid) for pid in children), 10, what="the orphaned children's exit")
    finally:
        server.stop()


def alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def test_a_child_that_cannot_start_gives_an_embedding_error_and_the_slot_back(child, monkeypatch):
    def no_child(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr("rag.embedding_child.ProcessPoolExecutor", no_child)
    released = threading.Event()
    with pytest.raises(EmbeddingError, match="Too many open files"):
        child.embed(TEXTS, timeout=60, release=released.set)
    assert released.is_set()
