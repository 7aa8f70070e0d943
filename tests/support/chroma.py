"""ChromaDB for tests: an isolated embedded store per test, a real `chroma run` server, a TCP
proxy that makes a healthy server slow, and small poem corpora.

A test module binds the fixtures it uses to module names (`chroma_store = chroma.chroma_store`;
importing them by name trips ruff's F811). `chroma_store` is also what a conftest-wide autouse fixture
should use, so that no test indexes into the checkout's var/chroma.
"""

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from rag import chroma_client
from rag.models import TOPICS, Poem, Temple
from tests.support.processes import ROOT, Process, free_port, wait_until

SAMPLE_POEMS = ROOT / "rag" / "data" / "sample_poems.jsonl"
TOPIC_QUESTIONS = ROOT / "tests" / "data" / "topic_questions.json"
CHROMA_BIN = Path(sys.executable).parent / "chroma"

# Advice written so each topic is recognisable without naming it, as real poems do.
ADVICE = {
    "career": "Your efforts at the office will be rewarded; the promotion comes after autumn.",
    "love": "The one you are waiting for is already walking towards you; open your heart.",
    "family": "Visit your parents often; the children will bring the household together.",
    "health": "Rest and eat warm food; the illness fades with early nights.",
    "wealth": "Save before you spend; money grows when left alone.",
    "travel": "Postpone the long journey abroad until spring; short trips are safe.",
    "study": "Review your lessons daily; the examination rewards patient students.",
    "lost_items": "What went missing lies under cloth near water; search the kitchen.",
    "disputes": "Settle the quarrel quietly; the court favours neither side this season.",
}


@pytest.fixture
def chroma_store(tmp_path, settings) -> Path:
    """An empty embedded store of this test's own, and no connection left over from another."""
    path = tmp_path / "chroma"
    settings.CHROMA_URL = ""
    settings.CHROMA_PATH = str(path)
    chroma_client.reset_connection()
    yield path
    chroma_client.reset_connection()


def make_poem(temple: Temple, number: int, *, topics: tuple[str, ...] = TOPICS, title: str = "") -> Poem:
    return Poem.objects.create(
        temple=temple,
        number=number,
        title=title or f"Poem {number} of {temple.name}",
        rank="middle blessing",
        verse=f"Clouds part over {temple.name}; the {number}th bell rings at dusk.",
        meaning="What is begun with patience ends well.",
        advice={t: ADVICE[t] for t in topics},
    )


def make_corpus(temples: tuple[str, ...] = ("jade-harbor", "cloud-peak"), poems: int = 3) -> list[Poem]:
    made = []
    for slug in temples:
        temple, _ = Temple.objects.get_or_create(slug=slug, defaults={"name": slug.replace("-", " ").title()})
        made += [make_poem(temple, n) for n in range(1, poems + 1)]
    return made


def poems_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def poem_row(temple: str, number: int, **fields) -> dict:
    return {
        "temple": temple,
        "temple_name": temple.replace("-", " ").title(),
        "number": number,
        "title": f"Poem {number}",
        "rank": "great blessing",
        "verse": "A bamboo bridge spans the gorge at dawn.",
        "meaning": "Cross while the wind is still.",
        "language": "en",
        "advice": dict(ADVICE),
        **fields,
    }


class ChromaServer:
    """`chroma run` on a free port over `path`; stop() and start() again keep the data."""

    def __init__(self, path: Path, log_dir: Path, port: int | None = None):
        self.path, self.log_dir, self.port = path, log_dir, port or free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ChromaServer":
        args = [str(CHROMA_BIN), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = Process(args, dict(os.environ), self.log_dir / f"chroma-{time.time_ns()}.log")
        wait_until(self.healthy, 60, interval=0.2, what="chroma run")
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class SlowProxy:
    """A TCP proxy to 127.0.0.1:`target_port` that holds every answer for `delay` seconds."""

    def __init__(self, target_port: int, delay: float = 0.0):
        self.target_port, self.delay = target_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server is down: so is the proxy, for this caller
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answer: bool) -> None:
        try:
            while data := source.recv(65536):
                if answer and self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# Poems per temple taken from the sample corpus: indexing all 120 costs a minute on a busy
# 2-core machine, and a third of it exercises the same ranking.
SAMPLE_PER_TEMPLE = 20


def sample_rows(per_temple: int = SAMPLE_PER_TEMPLE) -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE_POEMS.read_text().splitlines() if line.strip()]
    return [r for r in rows if int(r["number"]) <= per_temple]


@pytest.fixture(scope="module")
def sample_poems(django_db_setup, django_db_blocker, tmp_path_factory) -> list[Poem]:
    """Part of the sample corpus (both temples) in the test database for a whole module."""
    from rag.loader import load_poems

    path = poems_file(tmp_path_factory.mktemp("sample") / "poems.jsonl", sample_rows())
    with django_db_blocker.unblock():
        report = load_poems(path)
        assert not report.errors, report.errors
        poems = list(Poem.objects.select_related("temple").order_by("id"))
    yield poems
    with django_db_blocker.unblock():
        Temple.objects.all().delete()


@pytest.fixture(scope="module")
def sample_store(sample_poems, django_db_blocker, tmp_path_factory) -> Path:
    """The sample corpus indexed once per module into an embedded store of its own."""
    from django.test import override_settings

    from rag.index import reindex_all

    path = tmp_path_factory.mktemp("chroma")
    with override_settings(CHROMA_URL="", CHROMA_PATH=str(path)):
        chroma_client.reset_connection()
        with django_db_blocker.unblock():
            reindex_all()
        yield path
    chroma_client.reset_connection()
