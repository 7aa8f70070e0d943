"""Real retrieval in a real `qcluster` (3 forked workers) over a file SQLite database, with an
embedded Chroma store and with a Chroma server: no hang after the fork, and poems loaded later
are found without restarting the cluster."""

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.support.chroma import ChromaServer, poem_row, poems_file, sample_rows
from tests.support.processes import Process, base_env, run_manage, wait_until

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.support.fake_llm"]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")

# A deployment's parent imports everything (and here even runs the model) before Django-Q2
# forks its workers; none of that may leave a worker hanging on its first retrieval.
PARENT = """
import django
django.setup()
import chat.pipeline, chromadb, onnxruntime, rag.chroma_client, rag.index, rag.retrieval, rag.views
from rag import embeddings
embeddings.embed(["warm the model up in the parent"], timeout=30)
from django.core.management import call_command
call_command("qcluster")
"""

SUBMIT = """
import json
from django.contrib.auth.models import User
from chat.submission import Question, submit_question
from rag.models import Poem
user, _ = User.objects.get_or_create(username="alice")
ids = []
for temple, number, text in json.loads({asks!r}):
    poem = Poem.objects.get(temple__slug=temple, number=number)
    ids.append([str(submit_question(user, Question(text, poem=poem))[0].id), poem.id])
print("IDS=" + json.dumps(ids))
"""

ASKS = [
    ("jade-harbor", 1, "Will my boyfriend propose to me this year?", "love"),
    ("jade-harbor", 2, "I can't find my passport anywhere, where could it be?", "lost_items"),
    ("jade-harbor", 3, "Will my back surgery go well?", "health"),
    ("jade-harbor", 4, "Should I accept the job offer from the bank?", "career"),
    ("cloud-peak", 1, "Will I pass the bar exam?", "study"),
    ("cloud-peak", 2, "My neighbour is suing me over the fence. Will I win?", "disputes"),
    ("cloud-peak", 3, "Is it wise to put my savings into the stock market?", "wealth"),
    ("cloud-peak", 4, "Will my parents and my children get along when we all live together?", "family"),
    ("cloud-peak", 5, "Is it safe to fly overseas next month?", "travel"),
]


def submit(env: dict[str, str], asks: list[tuple]) -> list[tuple[str, int]]:
    payload = json.dumps([a[:3] for a in asks])
    done = run_manage(["shell", "-c", SUBMIT.format(asks=payload)], env)
    assert done.returncode == 0, done.stderr
    return [tuple(x) for x in json.loads(next(x for x in done.stdout.splitlines() if x.startswith("IDS="))[4:])]


def task_rows(db: Path, ids: list[str]) -> dict[str, dict]:
    with sqlite3.connect(db, timeout=20) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT id, status, worker_pid, error, result FROM chat_fortunetask").fetchall()
    found = {_uuid(r["id"]): dict(r) | {"result": json.loads(r["result"] or "null")} for r in rows}
    return {i: found[i] for i in ids if i in found}


def _uuid(raw: str) -> str:
    raw = str(raw).replace("-", "")
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def wait_for_tasks(db: Path, ids: list[str], cluster: Process) -> dict[str, dict]:
    def finished():
        rows = task_rows(db, ids)
        return rows if len(rows) == len(ids) and all(r["status"] in TERMINAL for r in rows.values()) else None

    try:
        return wait_until(finished, 120, interval=0.5, what="tasks to finish")
    except AssertionError:
        print(cluster.log()[-5000:])
        raise


def assert_real_retrieval(row: dict, poem_id: int, topic: str) -> None:
    assert row["status"] == "succeeded", row
    result = row["result"]
    assert not {"rag_unavailable", "poem_not_indexed"} & set(result["degraded_reasons"]), result
    assert (result["passages"][0]["poem"], result["passages"][0]["topic"]) == (poem_id, topic)


@pytest.fixture(params=["embedded", "server"])
def chroma_url(request, tmp_path) -> str:
    """No URL: the embedded store under tmp_path; else a `chroma run` server all processes share."""
    if request.param == "embedded":
        yield ""
        return
    server = ChromaServer(tmp_path / "chroma-server", tmp_path).start()
    yield server.url
    server.stop()


@pytest.fixture
def env(tmp_path, chroma_url, fake_llm_server) -> dict[str, str]:
    # Each task waits 0.5 s on the (fake) LLM, so nine of them keep more than one worker busy:
    # with instant tasks one worker could drain the queue before the others looked (seen in CI).
    fake_llm_server.control(mode="ok", latency=0.5, chunk_delay=0.01, reset=True)
    env = base_env(
        tmp_path,
        TASK_TIMEOUT="90",
        RAG_TIMEOUT="30",
        RAG_RELATED_K="2",
        CHROMA_URL=chroma_url,
        LLM_BASE_URL=fake_llm_server.base_url,
        LLM_MODEL="fake-llm",
    )
    for args in (["migrate", "-v0"], ["createcachetable"]):
        done = run_manage(args, env)
        assert done.returncode == 0, done.stderr
    done = run_manage(["load_poems", str(poems_file(tmp_path / "sample.jsonl", sample_rows(5)))], env)
    assert done.returncode == 0 and "Indexed 10 poem(s)" in done.stdout, done.stdout + done.stderr
    return env


@pytest.fixture
def cluster(env, tmp_path):
    process = Process([sys.executable, "-c", PARENT], env, tmp_path / "qcluster.log")
    yield process
    process.stop()


def test_three_forked_workers_answer_nine_questions_with_real_retrieval_and_find_poems_loaded_later(
    env, cluster, tmp_path
):
    db = tmp_path / "fortune.sqlite3"
    submitted = submit(env, ASKS)
    rows = wait_for_tasks(db, [task_id for task_id, _ in submitted], cluster)
    for (task_id, poem_id), ask in zip(submitted, ASKS, strict=True):
        assert_real_retrieval(rows[task_id], poem_id, ask[3])
    assert len({r["worker_pid"] for r in rows.values()}) >= 2  # answered in parallel

    new_poem = poem_row(
        "jade-harbor",
        101,
        advice={"travel": "The caravan to the western desert will arrive safely; pack water and go."},
    )
    done = run_manage(["load_poems", str(poems_file(tmp_path / "new.jsonl", [new_poem]))], env)
    assert done.returncode == 0 and "Indexed 1 poem(s)" in done.stdout, done.stdout + done.stderr

    [(task_id, poem_id)] = submit(env, [("jade-harbor", 101, "Will my trip across the desert be safe?")])
    row = wait_for_tasks(db, [task_id], cluster)[task_id]
    assert_real_retrieval(row, poem_id, "travel")
    assert row["result"]["passages"][0]["text"].startswith("The caravan to the western desert")
