import os
import subprocess
import sys
import time

import pytest

from rag import chroma_client, embeddings, index
from rag.chroma_client import ChromaUnavailable
from rag.embeddings import OnnxEmbedder
from rag.models import TOPICS, Poem
from tests.support import chroma
from tests.support.chroma import make_poem
from tests.support.processes import ROOT

chroma_store = chroma.chroma_store  # shared fixtures, found by these names

TIMEOUT = 30


def ids_in_index() -> set[str]:
    return set(chroma_client.list_ids(index.collection_name(), timeout=TIMEOUT))


def test_it_chunks_a_poem_into_verse_meaning_and_each_topics_advice(poem):
    docs = index.documents(poem)
    assert [d.metadata["topic"] for d in docs] == ["verse", "meaning", *TOPICS]
    assert docs[0].id == f"poem-{poem.id}-verse"
    assert docs[0].text == poem.verse
    assert docs[2].metadata == {
        "temple": "jade-harbor",
        "poem_id": poem.id,
        "number": 1,
        "rank": "blessing",
        "language": "en",
        "topic": "career",
    }


def test_it_embeds_advice_with_its_topic_but_stores_the_poems_own_words(poem):
    love = next(d for d in index.documents(poem) if d.metadata["topic"] == "love")
    assert love.text == poem.advice["love"]
    assert love.embed_text.startswith("Advice on love")
    assert love.embed_text.endswith(poem.advice["love"])


def test_the_collection_name_carries_the_model_id_in_characters_chroma_accepts(settings, monkeypatch):
    assert index.collection_name() == "poems-all-MiniLM-L6-v2-onnx-int8-p1"
    settings.CHROMA_COLLECTION_PREFIX = "fortune desk"
    monkeypatch.setattr(OnnxEmbedder, "model_id", "org/model:v2")
    assert index.collection_name() == "fortune-desk-org-model-v2-p1"


def test_indexing_twice_keeps_one_copy_of_each_passage(chroma_store, poem):
    index.index_poems([poem.id])
    index.index_poems([poem.id])
    assert ids_in_index() == {f"poem-{poem.id}-{t}" for t in ("verse", "meaning", *TOPICS)}


def test_it_removes_the_passages_of_a_dropped_topic_and_of_a_deleted_poem(chroma_store, temple):
    kept, dropped = make_poem(temple, 1), make_poem(temple, 2)
    index.index_poems([kept.id, dropped.id])
    kept.advice = {"love": "Speak gently."}
    kept.save(update_fields=["advice"])
    dropped_id = dropped.id
    dropped.delete()
    index.index_poems([kept.id, dropped_id])
    assert ids_in_index() == {f"poem-{kept.id}-verse", f"poem-{kept.id}-meaning", f"poem-{kept.id}-love"}


def test_reindexing_everything_reports_progress_and_removes_orphans(chroma_store, temple, monkeypatch):
    monkeypatch.setattr(index, "POEMS_PER_BATCH", 2)
    poems = [make_poem(temple, n, topics=("love",)) for n in range(1, 6)]
    index.index_poems([poems[0].id])
    Poem.objects.filter(id=poems[0].id).delete()
    seen: list[tuple[int, int]] = []
    report = index.reindex_all(progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 4), (4, 4)]
    assert (report.poems, report.passages, report.removed) == (4, 12, 3)
    assert len(ids_in_index()) == 12


def test_reindexing_after_a_model_change_builds_a_new_collection_cleanly(chroma_store, poem, monkeypatch):
    index.reindex_all()
    old = index.collection_name()
    monkeypatch.setattr(OnnxEmbedder, "model_id", "all-MiniLM-L6-v2-onnx-int8-retrained")
    new = index.collection_name()
    assert index.other_collections() == [old]  # nothing built for the new model yet

    report = index.reindex_all()
    assert report.passages == 11
    assert chroma_client.count(new, timeout=TIMEOUT) == 11
    assert chroma_client.count(old, timeout=TIMEOUT) == 11  # untouched until pruned
    assert index.prune_other_collections() == [old]
    assert chroma_client.list_collections(timeout=TIMEOUT) == [new]


def test_a_fresh_reindex_drops_what_the_collection_held(chroma_store, poem):
    index.reindex_all()
    chroma_client.upsert(
        index.collection_name(),
        ids=["poem-999999-love"],
        embeddings=embeddings.embed(["stray"], timeout=30),
        documents=["stray"],
        metadatas=[{"poem_id": 999999, "topic": "love", "temple": "x"}],
        timeout=TIMEOUT,
    )
    index.reindex_all(fresh=True)
    assert "poem-999999-love" not in ids_in_index()


def test_readers_never_create_the_store(chroma_store):
    with pytest.raises(ChromaUnavailable, match="rag_reindex"):
        chroma_client.count(index.collection_name(), timeout=TIMEOUT)
    assert not chroma_store.exists()


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    prelude = "import django; django.setup()\nfrom rag import chroma_client, embeddings, index\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def child_env(store) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "CHROMA_"))}
    return env | {"DJANGO_SETTINGS_MODULE": "fortune_project.settings", "CHROMA_PATH": str(store)}


UPSERT_FROM_ANOTHER_PROCESS = """
chroma_client.upsert(
    index.collection_name(), ids=["poem-424242-love"],
    embeddings=embeddings.embed(["Marry in the spring."], timeout=30),
    documents=["Marry in the spring."], metadatas=[{"poem_id": 424242, "topic": "love", "temple": "elsewhere"}],
    timeout=30,
)
"""


@pytest.mark.slow
def test_a_long_lived_reader_sees_what_another_process_indexed(chroma_store, poem):
    index.index_poems([poem.id])
    vector = embeddings.embed_one("When shall I marry?", timeout=30)
    query = {"n_results": 20, "where": None, "timeout": TIMEOUT}
    assert len(chroma_client.query(index.collection_name(), vector, **query)) == 11

    done = run_python(UPSERT_FROM_ANOTHER_PROCESS, child_env(chroma_store))
    assert done.returncode == 0, done.stderr

    hits = chroma_client.query(index.collection_name(), vector, **query)
    assert hits[0].id == "poem-424242-love"  # the vector index, not only the SQL table, is fresh


@pytest.mark.slow
def test_writers_in_different_processes_take_turns(chroma_store, poem):
    index.index_poems([poem.id])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import django; django.setup()\nfrom pathlib import Path\nimport time\n"
         "from rag import chroma_client\nfrom django.conf import settings\n"
         "with chroma_client._write_lock(Path(settings.CHROMA_PATH), 5):\n    print('locked', flush=True)\n"
         "    time.sleep(4)\n"],
        cwd=ROOT, env=child_env(chroma_store), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(ChromaUnavailable, match="another process is writing"):
            chroma_client.delete(index.collection_name(), [f"poem-{poem.id}-love"], timeout=0.5)
        assert time.monotonic() - started < 2
        assert f"poem-{poem.id}-love" in ids_in_index()
    finally:
        holder.wait(10)
    chroma_client.delete(index.collection_name(), [f"poem-{poem.id}-love"], timeout=TIMEOUT)  # now free
    assert f"poem-{poem.id}-love" not in ids_in_index()


OPEN_THEN_FORK = """
import os, time
from rag.chroma_client import ChromaUnavailable

chroma_client.count(index.collection_name(), timeout=30)  # the parent opens the store...
pid = os.fork()
if pid == 0:  # ...so its forked child must refuse at once instead of hanging
    started = time.monotonic()
    try:
        chroma_client.count(index.collection_name(), timeout=20)
        os._exit(1)
    except ChromaUnavailable as exc:
        os._exit(0 if "forked" in str(exc) and time.monotonic() - started < 1 else 2)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
print("parent", chroma_client.count(index.collection_name(), timeout=30))
"""


@pytest.mark.slow
def test_a_child_forked_after_its_parent_opened_the_store_fails_fast_instead_of_hanging(chroma_store, poem):
    index.index_poems([poem.id])
    done = run_python(OPEN_THEN_FORK, child_env(chroma_store))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["child 0", "parent 11"]
