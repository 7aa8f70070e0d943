"""Reading poem files as a stream of (line, row) pairs: JSON Lines line by line, CSV row by row,
a JSON array item by item. Memory stays flat whatever the file's size, and a row that cannot be
read comes as a `BadRow` with its line so that the rows around it still load:

- A file that is not text is refused whole (`UnreadableFile`) before a row is read: a NUL byte
  or bytes that are not UTF-8 in its first 8 KiB. Like git and grep we judge by the start: that
  is a binary file or another encoding (Latin-1, UTF-16). So is a CSV header that lacks a needed
  column.
- Past that point, bytes that are not UTF-8 make only the row holding them bad; so do a line,
  CSV record or JSON array item over `POEM_MAX_RECORD_BYTES` (read through, never kept) and JSON
  nested deeper than `MAX_DEPTH` (json itself would raise RecursionError).
- Unknown CSV columns are reported through `warn`, by name.
"""

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from rag.models import TOPICS

REQUIRED = ("temple", "number", "title", "rank", "verse", "meaning")
CSV_COLUMNS = frozenset((*REQUIRED, "temple_name", "language", *(f"advice_{t}" for t in TOPICS)))
MAX_DEPTH = 8  # a poem needs 2 (the row and its advice)
SNIFF_BYTES = 8192
CHUNK = 1 << 16
_BAD_BYTES = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of non-UTF-8 bytes
_CSV_NUMBER = re.compile(r"\s*(-?[0-9]{1,10})\s*")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BadRow(Exception):
    pass


class UnreadableFile(Exception):
    """The whole file is refused, or could not be read on: loading stops."""


def open_poem_file(path: Path) -> tuple[BinaryIO, str]:
    """The file opened to stream, and its format: "csv", "array" (a JSON array) or "lines"."""
    try:
        stream = path.open("rb")
    except OSError as e:
        raise UnreadableFile(f"cannot be read: {e.strerror or e}") from e
    try:
        head = stream.read(SNIFF_BYTES)
        stream.seek(0)
        _check_text(head, final=len(head) < SNIFF_BYTES)
    except OSError as e:
        stream.close()
        raise UnreadableFile(f"cannot be read: {e.strerror or e}") from e
    except UnreadableFile:
        stream.close()
        raise
    if path.suffix.lower() == ".csv":
        return stream, "csv"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return stream, "lines"
    start = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return stream, "array" if start.startswith(b"[") else "lines"


def _check_text(head: bytes, final: bool) -> None:
    if b"\x00" in head:
        line = head.count(b"\n", 0, head.index(b"\x00")) + 1
        raise UnreadableFile(f"not a text file (a NUL byte on line {line}); nothing was loaded")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final)
    except UnicodeDecodeError as e:
        line = head.count(b"\n", 0, e.start) + 1
        raise UnreadableFile(f"not UTF-8 text ({e.reason} on line {line}); nothing was loaded") from None


# --- Reading rows: (line, parsed row or BadRow), streamed ---------------------------------------


def read_rows(stream: BinaryIO, kind: str, warn: Callable[[int, str], None]) -> Iterator[tuple[int, object]]:
    limit = settings.POEM_MAX_RECORD_BYTES
    if kind == "csv":
        return _csv_rows(stream, limit, warn)
    if kind == "array":
        return _ArrayItems(stream, limit).items()
    return _json_lines(stream, limit)


def _too_long(limit: int, what: str = "line") -> BadRow:
    return BadRow(f"{what} longer than {limit:,} bytes (POEM_MAX_RECORD_BYTES); skipped unread")


def _json_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, object]]:
    for line_no, raw in enumerate(iter(lambda: stream.readline(limit + 1), b""), start=1):
        if len(raw) > limit and not raw.endswith(b"\n"):
            _skip_line(stream)
            yield line_no, _too_long(limit)
            continue
        text = raw.decode("utf-8", "surrogateescape")
        if text.strip():
            yield line_no, _parse_json(text.removeprefix("\ufeff") if line_no == 1 else text)


def _skip_line(stream: BinaryIO) -> None:
    while chunk := stream.readline(CHUNK):
        if chunk.endswith(b"\n"):
            return


def _parse_json(text: str) -> object:
    if _BAD_BYTES.search(text):
        return BadRow("holds bytes that are not UTF-8")
    if _too_deep(text):
        return BadRow(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return BadRow(f"invalid JSON: {e.msg}")
    except ValueError as e:  # NaN or Infinity, or an integer of more than 4,300 digits
        return BadRow(f"invalid JSON: {str(e).split(';')[0]}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


class _RecordTooLong(Exception):
    pass


class _CsvLines:
    """Physical lines for csv.reader. A line, or a record of several lines, over `limit` bytes
    raises _RecordTooLong with the rest of the line unread; csv.reader then starts afresh."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.line = 0
        self.record_bytes = 0
        self.bad_line: int | None = None  # the record's first line holding bytes that are not UTF-8

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(self.limit + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        self.record_bytes += len(raw)
        if len(raw) > self.limit and not raw.endswith(b"\n"):
            _skip_line(self.stream)
            raise _RecordTooLong(str(_too_long(self.limit)))
        if self.record_bytes > self.limit:
            raise _RecordTooLong(str(_too_long(self.limit, "record")))
        text = raw.decode("utf-8", "surrogateescape")
        if self.bad_line is None and _BAD_BYTES.search(text):
            self.bad_line = self.line
        return text.removeprefix("\ufeff") if self.line == 1 else text

    def new_record(self) -> int | None:
        bad, self.bad_line, self.record_bytes = self.bad_line, None, 0
        return bad


def _csv_rows(stream: BinaryIO, limit: int, warn: Callable[[int, str], None]) -> Iterator[tuple[int, object]]:
    lines = _CsvLines(stream, limit)
    reader = csv.reader(lines)
    header = _csv_header(reader, lines, warn)
    while header:
        start = lines.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (_RecordTooLong, csv.Error) as e:
            lines.new_record()
            yield lines.line, BadRow(str(e) if isinstance(e, _RecordTooLong) else f"unreadable CSV: {e}")
            continue
        bad_line = lines.new_record()
        if bad_line is not None:
            yield bad_line, BadRow("holds bytes that are not UTF-8")
        elif fields and len(fields) != len(header):
            yield start, BadRow(f"{len(fields)} fields where the header has {len(header)}")
        elif fields:
            yield start, _from_csv(header, fields)


def _csv_header(reader: Iterator[list[str]], lines: _CsvLines, warn: Callable[[int, str], None]) -> list[str]:
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return []
    except (_RecordTooLong, csv.Error) as e:
        raise UnreadableFile(f"line {lines.line}: the CSV header cannot be read: {e}; nothing was loaded") from None
    if lines.new_record() is not None:
        raise UnreadableFile("line 1: the CSV header holds bytes that are not UTF-8; nothing was loaded")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise UnreadableFile(f"line 1: the CSV header has no {', '.join(missing)} column; nothing was loaded")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise UnreadableFile(f"line 1: the CSV header names {', '.join(twice)} twice; nothing was loaded")
    for name in header:
        if name.startswith("advice_") and name not in CSV_COLUMNS:
            warn(1, f"unknown topic {name[7:]!r} (column {name!r}) ignored; topics are {', '.join(TOPICS)}")
        elif name not in CSV_COLUMNS:
            warn(1, f"unknown column {name!r} ignored")
    return header


def _from_csv(header: list[str], fields: list[str]) -> dict:
    row: dict = {name: value for name, value in zip(header, fields, strict=True) if name in CSV_COLUMNS}
    number = _CSV_NUMBER.fullmatch(row["number"])
    if number:
        row["number"] = int(number.group(1))
    advice = {t: row.pop(f"advice_{t}", "") for t in TOPICS}
    row["advice"] = {t: text for t, text in advice.items() if text.strip()}
    return row


class _ArrayItems:
    """The items of a top-level JSON array, streamed. Each item's extent is found by following
    only its strings and brackets, so its size and depth are known before `json` parses it; an
    item too large or too deep is read through without being kept, and the next one still loads."""

    _STRUCTURE = re.compile(r'["\[\]{}]')
    _IN_STRING = re.compile(r'["\\]')
    _SCALAR_END = re.compile(r"[,\]\s]")
    _NON_SPACE = re.compile(r"[^ \t\r\n]")

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf, self.pos = "", 0
        self.keep: int | None = None  # where the item being read starts, while its text is kept
        self.line, self.counted = 1, 0  # `line` is the line at buffer position `counted`
        self.truncated = False

    def items(self) -> Iterator[tuple[int, object]]:
        self._more()
        self.pos = 1 if self.buf.startswith("\ufeff") else 0
        self._skip_space()
        self.pos += 1  # the "[" the format was recognised by
        expect_item, seen_item = True, False
        while self._skip_space():
            at, char = self._line_at(self.pos), self.buf[self.pos]
            if char in ",]":
                self.pos += 1
                if expect_item and (char == "," or seen_item):
                    yield at, BadRow(f"invalid JSON: nothing before {char!r}")
                if char == "]":
                    if self._skip_space():
                        yield self._line_at(self.pos), BadRow("invalid JSON: text after the closing ']' ignored")
                    return
                expect_item = True
                continue
            if not expect_item:
                yield at, BadRow("invalid JSON: ',' missing before this item")
            yield at, self._item()
            expect_item, seen_item = False, True
            if self.truncated:
                return
        yield self._line_at(self.pos), BadRow("invalid JSON: the file ends before the array's closing ']'")

    def _item(self) -> object:
        self.keep = self.pos
        depth = deepest = 0
        in_string, oversized = False, False
        scalar = self.buf[self.pos] not in '{["'
        while True:
            pattern = self._SCALAR_END if scalar else self._IN_STRING if in_string else self._STRUCTURE
            found = pattern.search(self.buf, self.pos)
            if found is None or (in_string and found.group() == "\\" and found.end() == len(self.buf)):
                self.pos = len(self.buf) if found is None else found.start()
                if self.keep is not None and self.pos - self.keep > self.limit:
                    self.keep, oversized = None, True  # read on to its end without keeping it
                if not self._more():
                    if scalar:  # a number or literal ends where the file does
                        break
                    self.keep, self.truncated = None, True
                    return BadRow("invalid JSON: the file ends inside this item")
                continue
            if scalar:
                self.pos = found.start()
                break
            char, self.pos = found.group(), found.end()
            if in_string:
                if char == "\\":
                    self.pos += 1  # the escaped character, whatever it is
                    continue
                in_string = False
                if depth:
                    continue
                break
            if char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
                deepest = max(deepest, depth)
                if deepest > MAX_DEPTH:
                    self.keep = None
            else:
                depth -= 1
                if depth == 0:
                    break
        text, self.keep = None if self.keep is None else self.buf[self.keep : self.pos], None
        if oversized or (text is not None and len(text) > self.limit):
            return _too_long(self.limit, "item")
        if text is None:
            return BadRow(f"JSON nested deeper than {MAX_DEPTH} levels")
        return _parse_json(text)

    def _skip_space(self) -> bool:
        """Moves to the next character that is not white space; False at the end of the file."""
        while True:
            found = self._NON_SPACE.search(self.buf, self.pos)
            if found:
                self.pos = found.start()
                return True
            self.pos = len(self.buf)
            if not self._more():
                return False

    def _more(self) -> bool:
        """Reads on, first dropping the text no longer needed; False at the end of the file."""
        cut = self.pos if self.keep is None else self.keep
        if self.counted < cut:
            self._line_at(cut)
        self.buf, self.pos, self.counted = self.buf[cut:], self.pos - cut, self.counted - cut
        if self.keep is not None:
            self.keep -= cut
        data = self.stream.read(CHUNK)
        text = self.decoder.decode(data, final=not data)
        self.buf += text
        return bool(data or text)

    def _line_at(self, position: int) -> int:
        if position >= self.counted:
            self.line += self.buf.count("\n", self.counted, position)
            self.counted = position
            return self.line
        return self.line - self.buf.count("\n", position, self.counted)
