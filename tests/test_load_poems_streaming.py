"""load_poems streams: memory stays flat on large files, and one huge line is refused without
being read into memory. Peak Python allocations are measured with tracemalloc and must stay
far below the file's size."""

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag import loader, poem_files
from rag.models import Poem

MB = 1024 * 1024
ROW = {
    "temple": "cloud-peak",
    "temple_name": "Cloud Peak Shrine",
    "title": "Pines in Mist",
    "rank": "middle",
    "verse": "Mist hides the pines. " * 180,  # ~4,000 characters: rows near the limits
    "meaning": "Wait for the air to clear. " * 140,
    "language": "en",
    "advice": {"career": "Hold steady at work. " * 90, "love": "Speak gently. " * 140},
}
CSV_HEADER = "temple,number,title,rank,verse,meaning,advice_love\n"


def rows(count: int, start: int = 1) -> Iterator[dict]:
    for number in range(start, start + count):
        yield ROW | {"number": number}


def rows_for(size: int) -> int:
    return size // len(json.dumps(ROW)) + 1


def write(path: Path, pieces: Iterator[str | bytes]) -> Path:
    with path.open("wb") as f:
        for piece in pieces:
            f.write(piece.encode() if isinstance(piece, str) else piece)
    return path


def jsonl_file(path: Path, size: int) -> Path:
    return write(path, (json.dumps(r) + "\n" for r in rows(rows_for(size))))


def array_file(path: Path, size: int) -> Path:
    def pieces():
        yield "["
        for i, r in enumerate(rows(rows_for(size))):
            yield ("," if i else "") + json.dumps(r)  # one line: the array is not split by lines
        yield "]"

    return write(path, pieces())


def csv_file(path: Path, size: int) -> Path:
    def line(r: dict) -> str:
        fields = [r["temple"], str(r["number"]), r["title"], r["rank"], r["verse"], r["meaning"], r["advice"]["love"]]
        return ",".join(fields) + "\n"

    return write(path, [CSV_HEADER, *(line(r) for r in rows(rows_for(size)))])


def peak_of(work: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def count_rows(path: Path) -> tuple[int, int]:
    """(rows read, bad rows), reading as load_poems does but without saving."""
    stream, kind = poem_files.open_poem_file(path)
    good = bad = 0
    with stream:
        for _, row in poem_files.read_rows(stream, kind, lambda line, message: None):
            bad += isinstance(row, poem_files.BadRow)
            good += not isinstance(row, poem_files.BadRow)
    return good, bad


@pytest.mark.parametrize("make", [jsonl_file, array_file, csv_file], ids=["jsonl", "json-array", "csv"])
def test_a_large_file_is_read_with_flat_memory(tmp_path, settings, make):
    path = make(tmp_path / f"poems.{ {jsonl_file: 'jsonl', array_file: 'json', csv_file: 'csv'}[make] }", 16 * MB)
    (good, bad), peak = peak_of(lambda: count_rows(path))
    assert (good, bad) == (rows_for(16 * MB), 0)
    assert peak < 2 * MB, f"peak {peak / MB:.1f} MB reading a {path.stat().st_size / MB:.0f} MB file"


def huge_line_file(path: Path, kind: str) -> Path:
    huge = "x" * (50 * MB)
    if kind == "jsonl":
        return write(
            path, [json.dumps(ROW | {"number": 1}) + "\n", f'{{"verse": "{huge}"}}\n', json.dumps(ROW | {"number": 2})]
        )
    if kind == "json":
        return write(
            path,
            [
                "[",
                json.dumps(ROW | {"number": 1}),
                f',\n{{"verse": "{huge}"}},\n',
                json.dumps(ROW | {"number": 2}),
                "]",
            ],
        )
    line = ",".join(["cloud-peak", "{n}", "T", "R", "{verse}", "M", "L"]) + "\n"
    return write(
        path, [CSV_HEADER, line.format(n=1, verse="V"), line.format(n=3, verse=huge), line.format(n=2, verse="V")]
    )


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv"])
def test_a_50_mb_line_is_refused_unread_and_the_rows_around_it_load(db, tmp_path, kind):
    path = huge_line_file(tmp_path / f"poems.{kind}", kind)
    errors: list[tuple[int, str]] = []
    started = time.monotonic()
    report, peak = peak_of(
        lambda: loader.load_poems(path, on_error=lambda line, message: errors.append((line, message)))
    )
    elapsed = time.monotonic() - started
    what, line = {"jsonl": ("line", 2), "json": ("item", 2), "csv": ("line", 3)}[kind]
    assert errors == [(line, f"{what} longer than 262,144 bytes (POEM_MAX_RECORD_BYTES); skipped unread")]
    assert sorted(Poem.objects.values_list("number", flat=True)) == [1, 2]
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MB"
    assert elapsed < 20  # about 0.2 s measured; the old loader took 45 s and 3.3 GB


@pytest.mark.slow
@pytest.mark.parametrize("make", [jsonl_file, array_file], ids=["jsonl", "json-array"])
def test_a_200_mb_file_streams(tmp_path, make):
    """Reading is where memory could grow; saving is one row at a time (the 50 MB test above
    covers the whole path). Loading 200 MB into the database took about 6 minutes here."""
    path = make(tmp_path / ("poems.jsonl" if make is jsonl_file else "poems.json"), 200 * MB)
    (good, bad), peak = peak_of(lambda: count_rows(path))
    assert (good, bad) == (rows_for(200 * MB), 0)
    assert peak < 2 * MB, f"peak {peak / MB:.1f} MB reading a 200 MB file"
