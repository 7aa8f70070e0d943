import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rag import chroma_client, index
from rag.models import Poem
from tests.support import chroma
from tests.support.chroma import make_corpus, poem_row, poems_file
from tests.support.processes import free_port

chroma_store = chroma.chroma_store  # shared fixtures, found by these names


@pytest.fixture
def corpus(db):
    return make_corpus(("jade-harbor", "cloud-peak"), poems=2)


def run(capsys, *args) -> tuple[str, str]:
    call_command(*args)
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.fixture
def chroma_down(settings):
    settings.CHROMA_URL = f"http://127.0.0.1:{free_port()}"
    chroma_client.reset_connection()
    yield
    chroma_client.reset_connection()


def test_rag_reindex_prints_progress_and_what_it_did(chroma_store, corpus, capsys, monkeypatch):
    monkeypatch.setattr(index, "POEMS_PER_BATCH", 2)
    out, _ = run(capsys, "rag_reindex")
    assert "Indexing into poems-all-MiniLM-L6-v2-onnx-int8-p1 (embedded store)" in out
    assert "  2/4 poems\n  4/4 poems\n" in out
    assert "Indexed 4 poem(s), 44 passage(s); removed 0 stale passage(s)." in out


def test_rag_reindex_fails_clearly_when_chroma_is_down(corpus, chroma_down):
    with pytest.raises(CommandError, match="indexing failed"):
        call_command("rag_reindex")


def test_rag_query_prints_ranked_passages(chroma_store, corpus, capsys):
    call_command("rag_reindex")
    capsys.readouterr()
    out, _ = run(capsys, "rag_query", "Where are my lost keys?", "-k", "2")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(" 1. ") and "lost_items" in lines[0]
    assert lines[1].startswith(" 2. ")


def test_rag_query_keeps_to_a_temple(chroma_store, corpus, capsys):
    call_command("rag_reindex")
    capsys.readouterr()
    out, _ = run(capsys, "rag_query", "love", "--temple", "cloud-peak", "-k", "30")
    cloud_peak = {p.id for p in corpus if p.temple.slug == "cloud-peak"}
    shown = {int(line.split("poem ")[1].split()[0]) for line in out.splitlines()}
    assert shown == cloud_peak


def test_rag_query_for_a_poem_shows_what_a_task_would_get(chroma_store, capsys, settings, db):
    corpus = make_corpus(("jade-harbor",), poems=3)
    settings.RAG_RELATED_K = 2
    call_command("rag_reindex")
    capsys.readouterr()
    poem = corpus[0]
    out, _ = run(capsys, "rag_query", "Will my health improve?", "--poem", str(poem.id))
    topics, *lines = out.splitlines()
    assert topics.startswith("topics: health ")
    assert len(lines) == 11 + 2
    assert f"poem {poem.id} " in lines[0] and "health" in lines[0]
    assert [line.split()[5] for line in lines[11:]] == ["health", "health"]  # related: the routed topic


def test_rag_query_names_an_unknown_temple(chroma_store, corpus):
    with pytest.raises(CommandError, match="no temple with slug 'atlantis'"):
        call_command("rag_query", "love", "--temple", "atlantis")


def test_rag_query_says_when_retrieval_is_unavailable(corpus, chroma_down):
    with pytest.raises(CommandError, match="retrieval is unavailable"):
        call_command("rag_query", "love")


def test_load_poems_indexes_the_poems_it_changed(chroma_store, db, tmp_path, capsys):
    path = poems_file(tmp_path / "poems.jsonl", [poem_row("jade-harbor", 1), poem_row("jade-harbor", 2)])
    out, _ = run(capsys, "load_poems", str(path))
    assert "Indexed 2 poem(s), 22 passage(s)" in out
    assert chroma_client.count(index.collection_name(), timeout=30) == 22
    out, _ = run(capsys, "load_poems", str(path))
    assert "Indexed" not in out  # nothing changed, nothing to index


def test_load_poems_still_loads_when_indexing_fails_and_says_so(db, tmp_path, capsys, chroma_down):
    path = poems_file(tmp_path / "poems.jsonl", [poem_row("jade-harbor", 1)])
    out, err = run(capsys, "load_poems", str(path))
    assert "1 created" in out
    assert "Indexing failed" in err and "rag_reindex" in err
    assert Poem.objects.count() == 1


def test_rag_reindex_leaves_out_poems_load_poems_would_refuse_and_names_them(chroma_store, corpus, capsys):
    oversized, malformed = corpus[0], corpus[1]
    Poem.objects.filter(id=oversized.id).update(verse="v" * 50_000)  # written before the limits
    Poem.objects.filter(id=malformed.id).update(advice=["not", "an", "object"])  # e.g. by hand
    out, err = run(capsys, "rag_reindex")
    assert f"Not indexed: jade-harbor #1 {oversized.title}: verse is 50,000 characters, over the 4,000" in err
    assert f"Not indexed: jade-harbor #2 {malformed.title}: advice must be an object" in err
    assert "Indexed 2 poem(s), 22 passage(s); removed 0 stale passage(s); 2 poem(s) not indexed" in out
    assert chroma_client.count(index.collection_name(), timeout=30) == 22


def test_load_poems_indexes_the_rows_around_an_unreadable_csv_row(chroma_store, db, tmp_path, capsys):
    path = tmp_path / "poems.csv"
    row = "jade-harbor,{n},T,blessing,{verse},M\n"
    header = "temple,number,title,rank,verse,meaning\n"
    path.write_text(
        header + row.format(n=1, verse="V") + row.format(n=2, verse="x" * 140_000) + row.format(n=3, verse="V")
    )
    out, err = run(capsys, "load_poems", str(path))
    assert "poems.csv:3: skipped: unreadable CSV: field larger than field limit (131072)" in err
    assert "Indexed 2 poem(s), 4 passage(s)" in out
    assert chroma_client.count(index.collection_name(), timeout=30) == 4
