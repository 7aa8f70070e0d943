import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from rag.models import Poem, Temple
from tests.support.processes import ROOT

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
        json.dumps(ROW | {"number": 9, "advice": {"astrology": "x"}}),
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


def test_a_missing_file_is_a_clear_error(db):
    done = subprocess.run(
        [sys.executable, "manage.py", "load_poems", "/nonexistent.jsonl"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "no such file" in done.stderr


def test_the_sample_corpus_loads_cleanly(db, capsys):
    out = load(ROOT / "rag" / "data" / "sample_poems.jsonl", capsys).out
    assert "0 bad row(s)" in out
    assert Temple.objects.count() >= 2
    assert Poem.objects.count() >= 120
    for poem in Poem.objects.all():
        assert len(poem.advice) == 9, poem
