"""Retrieval benchmark: embedding throughput, retrieval latency and our overhead over Chroma.

    .venv/bin/python bench/rag.py                 # embedded store, 1k and 10k passages
    .venv/bin/python bench/rag.py --server        # the same against a `chroma run` server
    .venv/bin/python bench/rag.py --sizes 1000 --queries 100

Everything lives in a temporary directory (SQLite database, Chroma store): synthetic poems are
generated, embedded, indexed, then queried with the held-out labelled questions
(rag/data/questions/heldout.jsonl, which the router never trains on). For each size it prints
embedding throughput; p50/p99 of `rag.retrieval.retrieve` (embed and route the question, rank
the poem's own passages and the temple's advice on the routed topics by their stored vectors,
check the chosen related passages against the database) once every poem's vectors are cached in
the process ("warm", the steady state of a worker: no Chroma call) and p50 on each poem's first
question ("cold": a Chroma `get` of its vectors, and of a temple's topic on its first use); p50/p99 of
one bare Chroma query (precomputed vector, plain chromadb client, no timeout thread, filtered to
one poem's 11 passages, as retrieval did before routing) on the same collection; the ratios;
and, beside them, how often the drawn poem's advice on the question's labelled topic came first.
"""

import argparse
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSAGES_PER_POEM = 11  # verse, meaning and nine topics
HELDOUT = ROOT / "rag" / "data" / "questions" / "heldout.jsonl"

WORDS = {
    "career": "job office boss promotion colleague business salary project interview contract team",
    "love": "heart partner romance marriage date wedding lover longing kiss devotion match",
    "family": "parents children home mother father sister brother elders table household",
    "health": "body illness rest recovery doctor medicine sleep strength pain healing breath",
    "wealth": "money savings debt investment coins profit market fortune loan treasure",
    "travel": "journey road voyage ship flight abroad border map mountain pass caravan",
    "study": "exam school lessons teacher books degree scholarship notes practice grades",
    "lost_items": "keys wallet ring drawer missing search corner cloth pocket misplaced",
    "disputes": "quarrel court lawsuit neighbour argument settle judge feud agreement witness",
    "nature": "moon river pine crane lantern harbor mist bamboo plum blossom tide cloud",
}


def sentence(rng: random.Random, topic: str, n: int = 14) -> str:
    words = rng.choices(WORDS[topic].split(), k=n // 2) + rng.choices(WORDS["nature"].split(), k=n - n // 2)
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def labelled_questions() -> list[tuple[str, str]]:
    """(question, primary topic) from the held-out file."""
    import json

    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    return [(r["question"], r["topics"][0]) for r in rows]


def setup_django(workdir: Path, chroma_url: str) -> None:
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="fortune_project.settings",
        FORTUNE_VAR_DIR=str(workdir),
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        CHROMA_PATH=str(workdir / "chroma"),
        CHROMA_URL=chroma_url,
    )
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)  # the settings refuse to start without one
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)  # breaker state lives there, as in production


def make_poems(count: int, first_number: int, rng: random.Random) -> list:
    from rag.models import TOPICS, Poem, Temple

    temples = [Temple.objects.get_or_create(slug=s, defaults={"name": s})[0] for s in ("bench-east", "bench-west")]
    poems = [
        Poem(
            temple=temples[i % 2],
            number=first_number + i,
            title=f"Bench poem {first_number + i}",
            rank="middle",
            verse=sentence(rng, "nature", 20),
            meaning=sentence(rng, "nature", 16),
            advice={t: sentence(rng, t) for t in TOPICS},
        )
        for i in range(count)
    ]
    Poem.objects.bulk_create(poems)
    return list(Poem.objects.filter(number__gte=first_number).select_related("temple"))


def index_with_timing(poems: list) -> tuple[float, float, int]:
    """(embedded passages per second, indexed passages per second, passages)."""
    from django.conf import settings

    from rag import chroma_client, embeddings, index

    docs = [d for p in poems for d in index.documents(p)]
    started = time.perf_counter()
    vectors = embeddings.embed([d.embed_text for d in docs], timeout=settings.RAG_INDEX_TIMEOUT * 10)
    embedded = time.perf_counter() - started
    for start in range(0, len(docs), 1000):
        chunk = slice(start, start + 1000)
        chroma_client.upsert(
            index.collection_name(),
            ids=[d.id for d in docs[chunk]],
            embeddings=vectors[chunk],
            documents=[d.text for d in docs[chunk]],
            metadatas=[d.metadata for d in docs[chunk]],
            timeout=settings.RAG_INDEX_TIMEOUT,
        )
    total = time.perf_counter() - started
    return len(docs) / embedded, len(docs) / total, len(docs)


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: model load, connection, collection handle
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def measure(poems: list, runs: int, rng: random.Random) -> dict:
    from datetime import timedelta

    from django.utils import timezone

    from fortune_project.resilience.deadlines import Deadline
    from rag import chroma_client, embeddings, index, poem_vectors, related
    from rag.retrieval import retrieve

    labelled = labelled_questions()
    cases = [(*rng.choice(labelled), rng.choice(poems)) for _ in range(runs + 1)]
    vectors = {q: embeddings.embed_one(q, timeout=30) for q, _ in labelled}
    bare = _bare_collection(index.collection_name())
    it = itertools.cycle(cases)
    right: list[bool] = []

    def call(question: str, topic: str, poem) -> None:
        result = retrieve(question, poem, Deadline(timezone.now() + timedelta(seconds=60)))
        assert not result.degraded_reasons, result.degraded_reasons
        right.append(result.passages[0].topic == topic)

    poem_vectors.forget()
    related.forget()
    cold = []
    for poem in poems:  # every poem's first question: their vectors come from Chroma, then stay
        question, topic = rng.choice(labelled)
        started = time.perf_counter()
        call(question, topic, poem)
        cold.append((time.perf_counter() - started) * 1000)
    right.clear()

    def plain():
        question, _, poem = next(it)
        bare.query(query_embeddings=[vectors[question]], n_results=PASSAGES_PER_POEM, where={"poem_id": poem.id})

    def wrapped():
        question, _, poem = next(it)
        chroma_client.query(
            index.collection_name(), vectors[question], n_results=11, where={"poem_id": poem.id}, timeout=30
        )

    def embed_question():
        embeddings.embed_one(next(it)[0] + " ", timeout=30)

    return {
        "retrieve": timed(lambda: call(*next(it)), runs),
        "cold": cold,
        "bare": timed(plain, runs),
        "wrapped": timed(wrapped, runs),
        "embed1": timed(embed_question, runs),
        "topic_first": sum(right) / max(len(right), 1),
    }


def _bare_collection(name: str):
    import chromadb
    from chromadb.config import Settings
    from django.conf import settings

    options = Settings(anonymized_telemetry=False)
    if settings.CHROMA_URL:
        port = int(settings.CHROMA_URL.rsplit(":", 1)[1])
        client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=options)
    else:
        client = chromadb.PersistentClient(path=settings.CHROMA_PATH, settings=options)
    return client.get_collection(name, embedding_function=None)


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).parent / "chroma"
    log = open(workdir / "chroma.log", "wb")
    args = [str(chroma), "run", "--path", str(workdir / "server"), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("chroma run did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="passages in the index")
    parser.add_argument("--queries", type=int, default=200, help="timed calls per measurement")
    parser.add_argument("--server", action="store_true", help="use a `chroma run` server instead of embedded")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        workdir = Path(tmp)
        server, url = start_server(workdir) if args.server else (None, "")
        try:
            run(workdir, url, args.sizes, args.queries)
        finally:
            if server:
                server.terminate()
                server.wait(15)


def run(workdir: Path, url: str, sizes: list[int], queries: int) -> None:
    setup_django(workdir, url)
    from rag import embeddings, index

    rng = random.Random(42)
    print(f"model {embeddings.model_id()}, collection {index.collection_name()}, {'server' if url else 'embedded'}")
    print(f"{queries} timed calls per figure; latencies in ms; ratios are retrieve p50 / bare query p50")
    header = (
        "passages  embed/s  index/s  retrieve p50/p99  cold p50  bare query p50/p99  ratio warm  ratio cold"
        "  wrapper p50  embed-1 p50  topic first"
    )
    print(header)
    poems: list = []
    for size in sorted(sizes):
        wanted = size // PASSAGES_PER_POEM - len(poems)
        new = make_poems(wanted, len(poems) + 1, rng)
        embed_rate, index_rate, _ = index_with_timing(new)
        poems += new
        m = measure(poems, queries, rng)
        r50, c50, b50 = pct(m["retrieve"], 50), pct(m["cold"], 50), pct(m["bare"], 50)
        print(
            f"{len(poems) * PASSAGES_PER_POEM:>8}  {embed_rate:>7.0f}  {index_rate:>7.0f}  "
            f"{r50:>7.2f}/{pct(m['retrieve'], 99):<8.2f}  {c50:>8.2f}  {b50:>8.2f}/{pct(m['bare'], 99):<9.2f}  "
            f"{r50 / b50:>9.2f}x  {c50 / b50:>9.2f}x  {pct(m['wrapped'], 50):>11.2f}  {pct(m['embed1'], 50):>11.2f}"
            f"  {m['topic_first'] * 100:>10.1f}%"
        )
        # Rates above are for the passages added at this size (1k, then 9k more for 10k).


if __name__ == "__main__":
    main()
