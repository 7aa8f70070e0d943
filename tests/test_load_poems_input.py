"""load_poems against hostile or careless files: each problem is reported with its line, the rows
that can load still load, a refused row leaves the database and the index as they were, and a
file that is not text is refused whole before anything is written."""

import csv
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rag import index, loader
from rag.models import Poem
from tests.support.processes import base_env, run_manage

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
HEADER = ["temple", "number", "title", "rank", "verse", "meaning", "advice_love"]


def csv_line(*fields: object) -> str:
    return ",".join(f'"{f}"' if "," in str(f) else str(f) for f in fields) + "\n"


def csv_row(number: object, verse: str = "V", love: str = "Love well.") -> str:
    return csv_line("cloud-peak", number, "T", "blessing", verse, "M", love)


def jsonl(tmp_path, *rows: object, name: str = "poems.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def load(path, capsys):
    call_command("load_poems", str(path))
    return capsys.readouterr()


@pytest.fixture
def indexed(monkeypatch) -> list[int]:
    """The poem ids load_poems handed to the index, batch by batch."""
    seen: list[int] = []

    def record(poem_ids):
        seen.extend(poem_ids)
        return index.IndexReport(poems=len(poem_ids))

    monkeypatch.setattr(index, "index_poems", record)
    return seen


# --- Files that are not text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\x00\x00\x00\rIHDR",  # binary
        json.dumps(ROW | {"title": "Café"}, ensure_ascii=False).encode("latin-1") + b"\n",  # another encoding
        json.dumps(ROW).encode("utf-16"),
    ],
    ids=["binary", "latin-1", "utf-16"],
)
def test_a_file_that_is_not_text_is_refused_before_anything_is_written(db, tmp_path, content, indexed):
    path = tmp_path / "poems.jsonl"
    path.write_bytes(json.dumps(ROW | {"number": 1}).encode() + b"\n" + content)
    with pytest.raises(CommandError, match="not (a text file|UTF-8 text).*line 2.*nothing was loaded"):
        call_command("load_poems", str(path))
    assert not Poem.objects.exists()
    assert indexed == []


def test_a_file_that_is_not_text_exits_1_with_one_line(tmp_path):
    path = tmp_path / "poems.json"
    path.write_bytes(b"\x00\x01\x02" * 100)
    done = run_manage(["load_poems", str(path)], base_env(tmp_path, SECRET_KEY="test-only-key"))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "poems.json: not a text file (a NUL byte on line 1)" in done.stderr


def test_bad_bytes_past_the_start_make_only_their_row_bad(db, tmp_path, capsys):
    padding = [ROW | {"number": n, "meaning": "m" * 1000} for n in range(1, 11)]  # past the first 8 KiB
    path = tmp_path / "poems.jsonl"
    lines = [json.dumps(r).encode() for r in padding]
    lines += [
        json.dumps(ROW | {"number": 11, "title": "Café"}, ensure_ascii=False).encode("latin-1"),
        json.dumps(ROW).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = load(path, capsys)
    assert "poems.jsonl:11: skipped: holds bytes that are not UTF-8" in result.err
    assert sorted(Poem.objects.values_list("number", flat=True)) == [*range(1, 11)]
    assert "10 created" in result.out and "1 bad row(s)" in result.out


def test_bad_bytes_in_a_csv_row_make_only_that_row_bad(db, tmp_path, capsys):
    path = tmp_path / "poems.csv"
    padding = "".join(csv_row(n, verse="v" * 900) for n in range(1, 11))
    content = csv_line(*HEADER) + padding
    path.write_bytes(content.encode() + csv_row(11, verse="Café").encode("latin-1") + csv_row(12).encode())
    result = load(path, capsys)
    assert "poems.csv:12: skipped: holds bytes that are not UTF-8" in result.err
    assert Poem.objects.count() == 11 and not Poem.objects.filter(number=11).exists()


def test_a_csv_header_without_a_needed_column_is_refused_whole(db, tmp_path):
    path = tmp_path / "poems.csv"
    path.write_text("temple,number,title,rank,meaning\ncloud-peak,1,T,R,M\n")
    with pytest.raises(CommandError, match="line 1: the CSV header has no verse column; nothing was loaded"):
        call_command("load_poems", str(path))
    assert not Poem.objects.exists()


# --- Rows that cannot be read ------------------------------------------------------------------


def test_a_csv_field_over_128_kib_is_reported_and_the_rows_around_it_load_and_are_indexed(
    db, tmp_path, capsys, indexed
):
    path = tmp_path / "poems.csv"
    path.write_text(csv_line(*HEADER) + csv_row(1) + csv_row(2, verse="x" * 140_000) + csv_row(3))
    result = load(path, capsys)
    assert "poems.csv:3: skipped: unreadable CSV: field larger than field limit" in result.err
    assert sorted(Poem.objects.values_list("number", flat=True)) == [1, 3]
    assert sorted(indexed) == sorted(Poem.objects.values_list("id", flat=True))


def test_a_csv_row_with_the_wrong_number_of_fields_is_reported(db, tmp_path, capsys):
    path = tmp_path / "poems.csv"
    path.write_text(csv_line(*HEADER) + "cloud-peak,1,T\n" + "\n" + csv_row(2))
    result = load(path, capsys)
    assert "poems.csv:2: skipped: 3 fields where the header has 7" in result.err
    assert list(Poem.objects.values_list("number", flat=True)) == [2]


@pytest.mark.parametrize("name", ["poems.jsonl", "poems.json"])
def test_deeply_nested_json_is_a_row_error_not_a_recursion_error(db, tmp_path, capsys, name):
    deep = "[" * 100_000 + "]" * 100_000
    rows = [deep, ROW, ROW | {"number": 8, "advice": {"love": [[[[[[[[["x"]]]]]]]]]}}]
    if name.endswith(".json"):
        path = tmp_path / name
        path.write_text("[\n" + ",\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n]\n")
    else:
        path = jsonl(tmp_path, *rows, name=name)
    result = load(path, capsys)
    assert f"{name}:{1 + name.endswith('.json')}: skipped: JSON nested deeper than 8 levels" in result.err
    assert f"{name}:{3 + name.endswith('.json')}: skipped: JSON nested deeper than 8 levels" in result.err
    assert list(Poem.objects.values_list("number", flat=True)) == [7]


@pytest.mark.parametrize(
    "line, error",
    [
        ('{"number": NaN}', "invalid JSON: NaN is not a number JSON allows"),
        ('{"number": 1' + "0" * 5000 + "}", "invalid JSON: Exceeds the limit"),
        ("[1, 2", "invalid JSON: Expecting"),
        ('"just text"', "not an object but text"),
    ],
)
def test_json_that_python_would_choke_on_is_reported(db, tmp_path, capsys, line, error):
    result = load(jsonl(tmp_path, line, ROW), capsys)
    assert f"poems.jsonl:1: skipped: {error}" in result.err
    assert Poem.objects.count() == 1


def test_a_json_array_reports_bad_items_and_loads_the_others(db, tmp_path, capsys):
    path = tmp_path / "poems.json"
    path.write_text(
        "[\n" + json.dumps(ROW) + "\n" + json.dumps(ROW | {"number": 8}) + ",\n,\n" + json.dumps(ROW | {"number": 9})
    )
    result = load(path, capsys)
    assert "poems.json:3: skipped: invalid JSON: ',' missing before this item" in result.err
    assert "poems.json:4: skipped: invalid JSON: nothing before ','" in result.err
    assert "poems.json:5: skipped: invalid JSON: the file ends before the array's closing ']'" in result.err
    assert sorted(Poem.objects.values_list("number", flat=True)) == [7, 8, 9]


def test_a_read_failure_midway_still_indexes_what_was_written_and_exits_1(db, tmp_path, monkeypatch, indexed):
    def two_rows_then_a_broken_disk(stream, kind, warn):
        yield 1, ROW | {"number": 1}
        yield 2, ROW | {"number": 2}
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(loader, "read_rows", two_rows_then_a_broken_disk)
    with pytest.raises(CommandError, match="reading stopped after line 2: Input/output error"):
        call_command("load_poems", str(jsonl(tmp_path, ROW)))
    assert sorted(indexed) == sorted(Poem.objects.values_list("id", flat=True)) and len(indexed) == 2


def test_changed_poems_are_indexed_batch_by_batch(db, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loader, "BATCH", 2)
    calls = []
    monkeypatch.setattr(index.LoadIndexer, "__call__", lambda self, ids: calls.append(list(ids)))
    load(jsonl(tmp_path, *[ROW | {"number": n} for n in range(1, 6)]), capsys)
    assert [len(c) for c in calls] == [2, 2, 1]


# --- Numbers, types, limits --------------------------------------------------------------------


@pytest.mark.parametrize("number", [True, False, 5.9, 1.0, "7", 1e400, None])
def test_a_number_must_be_a_json_integer(db, tmp_path, capsys, number):
    load(jsonl(tmp_path, ROW | {"number": 1, "title": "First"}), capsys)
    result = load(jsonl(tmp_path, ROW | {"number": number, "title": "Overwritten"}), capsys)
    assert "poems.jsonl:1: skipped:" in result.err
    assert list(Poem.objects.values_list("number", "title")) == [(1, "First")]


@pytest.mark.parametrize("number, loads", [("5", True), (" 5 ", True), ("5.9", False), ("true", False), ("-1", False)])
def test_a_csv_number_must_be_written_as_a_whole_number(db, tmp_path, capsys, number, loads):
    path = tmp_path / "poems.csv"
    path.write_text(csv_line(*HEADER) + csv_row(number))
    result = load(path, capsys)
    assert Poem.objects.filter(number=5).exists() is loads
    assert ("poems.csv:2: skipped: number" in result.err) is not loads


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"title": 5}, "title must be text, not a number"),
        ({"verse": ["a", "b"]}, "verse must be text, not a list"),
        ({"advice": {"love": {"x": 1}}}, "advice.love must be text, not an object"),
        ({"meaning": "nul \u0000 here"}, "meaning holds a NUL character"),
        ({"verse": "half a pair \ud83d"}, "verse holds a NUL character or an unpaired surrogate"),
    ],
)
def test_texts_must_be_json_strings_a_database_can_store(db, tmp_path, capsys, bad, error):
    result = load(jsonl(tmp_path, ROW | bad), capsys)
    assert f"poems.jsonl:1: skipped: {error}" in result.err
    assert not Poem.objects.exists()


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"verse": "v" * 4001}, "verse is 4,001 characters, over the 4,000 allowed (POEM_MAX_VERSE_CHARS)"),
        ({"meaning": "m" * 4001}, "meaning is 4,001 characters, over the 4,000 allowed (POEM_MAX_MEANING_CHARS)"),
        ({"advice": {"love": "l" * 2001}}, "advice.love is 2,001 characters, over the 2,000 allowed"),
    ],
)
def test_an_oversized_row_is_refused_and_leaves_the_poem_and_index_as_they_were(
    db, tmp_path, capsys, indexed, bad, error
):
    load(jsonl(tmp_path, ROW), capsys)
    before = list(Poem.objects.values())
    indexed.clear()
    result = load(jsonl(tmp_path, ROW | bad), capsys)
    assert f"poems.jsonl:1: skipped: {error}" in result.err
    assert list(Poem.objects.values()) == before
    assert indexed == []


def test_the_limits_come_from_settings(db, tmp_path, capsys, settings):
    settings.POEM_MAX_VERSE_CHARS = 10
    result = load(jsonl(tmp_path, ROW | {"verse": "v" * 11}, ROW | {"number": 8, "verse": "v" * 10}), capsys)
    assert "poems.jsonl:1: skipped: verse is 11 characters, over the 10 allowed" in result.err
    assert list(Poem.objects.values_list("number", flat=True)) == [8]


# --- Unknown names -----------------------------------------------------------------------------


def test_a_misspelt_csv_column_is_warned_about_by_name(db, tmp_path, capsys):
    path = tmp_path / "poems.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*HEADER, "advice_lovee", "notes"])
        writer.writerow(["cloud-peak", 3, "T", "blessing", "V", "M", "Love well.", "Love better.", "n"])
    result = load(path, capsys)
    assert "poems.csv:1: warning: unknown topic 'lovee' (column 'advice_lovee') ignored" in result.err
    assert "poems.csv:1: warning: unknown column 'notes' ignored" in result.err
    assert Poem.objects.get().advice == {"love": "Love well."}


def test_unknown_json_keys_and_topics_are_warned_about_once_with_their_first_line(db, tmp_path, capsys):
    rows = [ROW | {"number": n, "notes": "x", "advice": {"lovee": "x", "love": "y"}} for n in (1, 2, 3)]
    result = load(jsonl(tmp_path, ROW, *rows), capsys)
    assert "poems.jsonl:2: warning: unknown key 'notes' ignored (3 rows)" in result.err
    assert "poems.jsonl:2: warning: unknown topic 'lovee' ignored; topics are career, love" in result.err
    assert Poem.objects.count() == 4
    assert Poem.objects.get(number=1).advice == {"love": "y"}
