import json

import pytest
from django.core.management import call_command

from rag.models import Poem, Temple
from tests.support.processes import ROOT, base_env, run_manage

ROW = {
    "temple": "cloud-peak",
    "temple_name": "Cloud Peak Shrine",
    "number": 7,
    "title": "Pines in Mist",
    "rank": "middle",
    "verse": "Mist hides the pines",
    "meaning": "Wait for the air to clear.",
    "language": "en",
    "advice": {"career": "Hold steady at work.", "love": "Speak gently."},
}


def load(path, capsys):
    call_command("load_poems", str(path))
    return capsys.readouterr()


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "poems.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return path


def test_it_loads_json_lines(db, jsonl, capsys):
    out = load(jsonl, capsys).out
    poem = Poem.objects.get()
    assert (poem.temple.slug, poem.temple.name, poem.number, poem.advice["love"]) == (
        "cloud-peak",
        "Cloud Peak Shrine",
        7,
        "Speak gently.",
    )
    assert "1 created" in out


def test_loading_twice_changes_nothing(db, jsonl, capsys):
    load(jsonl, capsys)
    out = load(jsonl, capsys).out
    assert Poem.objects.count() == 1
    assert "0 created, 0 updated, 1 unchanged" in out


def test_a_changed_row_updates_the_poem(db, jsonl, tmp_path, capsys):
    load(jsonl, capsys)
    jsonl.write_text(json.dumps(ROW | {"title": "Pines After Rain"}) + "\n")
    assert "1 updated" in load(jsonl, capsys).out
    assert Poem.objects.get().title == "Pines After Rain"


def test_it_loads_a_json_array(db, tmp_path, capsys):
    path = tmp_path / "poems.json"
    path.write_text(json.dumps([ROW, ROW | {"number": 8}]))
    load(path, capsys)
    assert Poem.objects.count() == 2


def test_it_loads_csv_with_advice_columns(db, tmp_path, capsys):
    path = tmp_path / "poems.csv"
    header = "temple,temple_name,number,title,rank,verse,meaning,language,advice_career,advice_love"
    path.write_text(header + "\ncloud-peak,Cloud Peak Shrine,3,T,blessing,V,M,en,Work well.,Love well.\n")
    load(path, capsys)
    assert Poem.objects.get().advice == {"career": "Work well.", "love": "Love well."}


def test_bad_rows_are_reported_by_line_and_good_rows_still_load(db, tmp_path, capsys):
    path = tmp_path / "poems.jsonl"
    lines = [
        json.dumps(ROW),
        "{not json",
        json.dumps(ROW | {"number": "seven"}),
        json.dumps(ROW | {"number": 9, "advice": "x"}),
        json.dumps({"temple": "cloud-peak"}),
        json.dumps(ROW | {"number": 10, "language": "fr"}),
        json.dumps(ROW | {"number": 11}),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = load(path, capsys)
    assert Poem.objects.count() == 2
    for line in (2, 3, 4, 5, 6):
        assert f"poems.jsonl:{line}: skipped" in result.err
    assert "5 bad row(s)" in result.out


@pytest.mark.parametrize(
    "bad",
    [
        {"title": "t" * 201},
        {"rank": "r" * 65},
        {"temple": "c" * 65},
        {"temple": "cloud peak!"},
        {"temple_name": "n" * 201},
        {"number": 2**31},
    ],
)
def test_rows_the_database_would_refuse_are_reported_before_saving(db, tmp_path, capsys, bad):
    path = tmp_path / "poems.jsonl"
    path.write_text(json.dumps(ROW | {"number": 12} | bad) + "\n" + json.dumps(ROW) + "\n")
    result = load(path, capsys)
    assert "poems.jsonl:1: skipped" in result.err
    assert Poem.objects.get().number == 7


def test_a_row_the_database_refuses_anyway_is_reported_and_the_rest_load(db, tmp_path, capsys, monkeypatch):
    from django.db import DataError

    from rag import loader

    save = loader._save

    def refuse_the_first(clean):
        if clean["number"] == 12:
            raise DataError("value too long for type character varying(64)")
        return save(clean)

    monkeypatch.setattr(loader, "_save", refuse_the_first)
    path = tmp_path / "poems.jsonl"
    path.write_text(json.dumps(ROW | {"number": 12}) + "\n" + json.dumps(ROW) + "\n")
    result = load(path, capsys)
    assert "poems.jsonl:1: skipped: the database refused it" in result.err
    assert Poem.objects.get().number == 7


def test_bad_items_of_a_json_array_are_reported_by_the_line_they_start_on(db, tmp_path, capsys):
    path = tmp_path / "poems.json"
    path.write_text(json.dumps([ROW, ROW | {"number": "seven"}, ROW | {"number": 8}], indent=2))
    result = load(path, capsys)
    starts = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if line == "  {"]
    second = starts[1]
    assert f"poems.json:{second}: skipped" in result.err
    assert Poem.objects.count() == 2


def test_a_json_array_cut_short_is_reported_where_it_breaks(db, tmp_path, capsys):
    path = tmp_path / "poems.json"
    path.write_text("[\n" + json.dumps(ROW) + ",\n" + json.dumps(ROW | {"number": 8})[:40])
    result = load(path, capsys)
    assert "poems.json:3: skipped: invalid JSON" in result.err
    assert Poem.objects.count() == 1


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    done = run_manage(["load_poems", "/nonexistent.jsonl"], base_env(tmp_path, SECRET_KEY="test-only-key"))
    assert done.returncode != 0
    assert "no such file" in done.stderr


def test_the_sample_corpus_loads_cleanly(db, capsys):
    out = load(ROOT / "rag" / "data" / "sample_poems.jsonl", capsys).out
    assert "0 bad row(s)" in out
    assert Temple.objects.count() >= 2
    assert Poem.objects.count() >= 120
    for poem in Poem.objects.all():
        assert len(poem.advice) == 9, poem
