"""Loading poems from JSON, JSON Lines or CSV, idempotently by temple + number.

Rows come streamed from `rag.poem_files` (which refuses a file that is not text before anything
is written, and reports unreadable rows by line). Here each row is checked: a number must be an
integer, texts must be strings within their `POEM_MAX_*` limits, and unknown keys and advice
topics are ignored with a warning that names them. A refused row writes nothing; each good row
is saved in its own transaction, and the poems that changed are handed to `on_batch` (the
command indexes them) every `BATCH` poems and when loading stops for any reason, so what was
written is indexed even if a later row or the file fails.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import DatabaseError, reset_queries, transaction

from rag.models import LANGUAGES, TOPICS, Poem, Temple
from rag.poem_files import REQUIRED, BadRow, UnreadableFile, open_poem_file, read_rows

__all__ = ["BadRow", "LoadReport", "UnreadableFile", "clean_row", "load_poems", "poem_problem"]

KNOWN_KEYS = frozenset((*REQUIRED, "temple_name", "language", "advice"))
MAX_NUMBER = 2_147_483_647  # PositiveIntegerField's range on every database
BATCH = 64  # changed poems handed to on_batch at a time
MAX_KEPT = 1000  # errors and distinct warnings kept in the report (all are counted and reported)
_LANGS = {code for code, _ in LANGUAGES}
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")  # NUL and unpaired surrogates: databases refuse them


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_KEPT
    warnings: dict[str, list[int]] = field(default_factory=dict)  # message -> [first line, rows]

    def error(self, line: int, message: str) -> None:
        self.bad += 1
        if len(self.errors) < MAX_KEPT:
            self.errors.append((line, message))

    def warn(self, line: int, message: str) -> None:
        seen = self.warnings.get(message)
        if seen:
            seen[1] += 1
        elif len(self.warnings) < MAX_KEPT:
            self.warnings[message] = [line, 1]


# --- Checking and saving a row -----------------------------------------------------------------


def text_limits() -> dict[str, tuple[int, str]]:
    """Characters each text may hold, and the setting that says so."""
    return {
        "verse": (settings.POEM_MAX_VERSE_CHARS, "POEM_MAX_VERSE_CHARS"),
        "meaning": (settings.POEM_MAX_MEANING_CHARS, "POEM_MAX_MEANING_CHARS"),
        "advice": (settings.POEM_MAX_ADVICE_CHARS, "POEM_MAX_ADVICE_CHARS"),
    }


def clean_row(row: object, warn: Callable[[str], None] | None = None) -> dict:
    if not isinstance(row, dict):
        raise BadRow(f"not an object but {_json_type(row)}")
    if warn:
        for key in sorted(row.keys() - KNOWN_KEYS, key=str):
            warn(f"unknown key {key!r} ignored")
    missing = [k for k in REQUIRED if row.get(k) is None or row[k] == "" or str(row[k]).isspace()]
    if missing:
        raise BadRow(f"missing {', '.join(missing)}")
    number = row["number"]
    if type(number) is not int:  # bool is an int subclass: true is not poem 1
        quoted = " (write it without quotes)" if isinstance(number, str) and number.strip().isdecimal() else ""
        raise BadRow(f"number {json.dumps(number)[:40]} is not an integer{quoted}")
    if not 1 <= number <= MAX_NUMBER:
        raise BadRow(f"number must be between 1 and {MAX_NUMBER}")
    texts = {key: _text(row, key) for key in ("temple", "title", "rank", "verse", "meaning")}
    texts["temple_name"] = _text(row, "temple_name") or texts["temple"]
    language = _text(row, "language") or "en"
    if language not in _LANGS:
        raise BadRow(f"language {language!r} is not one of {', '.join(sorted(_LANGS))}")
    _check_lengths(texts)
    return {
        "temple": texts["temple"],
        "temple_name": texts["temple_name"],
        "number": number,
        "fields": {
            **{key: texts[key] for key in ("title", "rank", "verse", "meaning")},
            "language": language,
            "advice": _advice(row.get("advice"), warn),
        },
    }


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _text(row: dict, key: str, label: str = "") -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRow(f"{label or key} must be text, not {_json_type(value)}")
    if _BAD_CHARS.search(value):
        raise BadRow(f"{label or key} holds a NUL character or an unpaired surrogate")
    return value.strip()


def _advice(advice: object, warn: Callable[[str], None] | None) -> dict[str, str]:
    if advice is None or advice == "":
        return {}
    if not isinstance(advice, dict):
        raise BadRow("advice must be an object of topic: text")
    if warn:
        for topic in sorted(advice.keys() - set(TOPICS), key=str):
            warn(f"unknown topic {topic!r} ignored; topics are {', '.join(TOPICS)}")
    limit, setting = text_limits()["advice"]
    cleaned = {}
    for topic in TOPICS:
        text = _text(advice, topic, f"advice.{topic}")
        if len(text) > limit:
            raise BadRow(f"advice.{topic} is {len(text):,} characters, over the {limit:,} allowed ({setting})")
        if text:
            cleaned[topic] = text
    return cleaned


def _check_lengths(texts: dict[str, str]) -> None:
    """What the database would refuse (PostgreSQL enforces lengths), said per row instead, and
    the limits that keep one poem from filling every result that draws it."""
    try:
        validate_slug(texts["temple"])
    except ValidationError:
        raise BadRow(f"temple {texts['temple']!r} is not a slug (letters, digits, - and _)") from None
    limits = {
        "temple": (Temple._meta.get_field("slug").max_length, ""),
        "temple_name": (Temple._meta.get_field("name").max_length, ""),
        "title": (Poem._meta.get_field("title").max_length, ""),
        "rank": (Poem._meta.get_field("rank").max_length, ""),
    } | text_limits()
    for key, (limit, setting) in limits.items():
        assert limit is not None  # each of these fields declares a max_length
        if key in texts and len(texts[key]) > limit:
            why = f" ({setting})" if setting else ""
            raise BadRow(f"{key} is {len(texts[key]):,} characters, over the {limit:,} allowed{why}")


def poem_problem(poem: Poem) -> str | None:
    """Why a stored poem could not be loaded as it is today (over a limit, malformed advice)."""
    row = {
        "temple": poem.temple.slug,
        "temple_name": poem.temple.name,
        **{key: getattr(poem, key) for key in ("number", "title", "rank", "verse", "meaning", "language", "advice")},
    }
    try:
        clean_row(row)
    except BadRow as e:
        return str(e)
    return None


def _save(clean: dict) -> tuple[str, int]:
    """("created" | "updated" | "unchanged", the poem's id)."""
    temple, _ = Temple.objects.get_or_create(slug=clean["temple"], defaults={"name": clean["temple_name"]})
    if temple.name != clean["temple_name"]:
        temple.name = clean["temple_name"]
        temple.save(update_fields=["name"])
    poem = Poem.objects.filter(temple=temple, number=clean["number"]).first()
    if poem is None:
        return "created", Poem.objects.create(temple=temple, number=clean["number"], **clean["fields"]).id
    if all(getattr(poem, k) == v for k, v in clean["fields"].items()):
        return "unchanged", poem.id
    for k, v in clean["fields"].items():
        setattr(poem, k, v)
    poem.save(update_fields=[*clean["fields"], "updated_at"])
    return "updated", poem.id


def _load_row(line: int, row: object, report: LoadReport) -> int | None:
    """Saves one row; the poem's id if it changed. Raises BadRow, having written nothing."""
    if isinstance(row, BadRow):
        raise row
    clean = clean_row(row, lambda message: report.warn(line, message))
    try:
        with transaction.atomic():
            outcome, poem_id = _save(clean)
    except (DatabaseError, ValueError) as e:  # e.g. a lock timeout, a constraint
        raise BadRow(f"the database refused it: {e}") from e
    setattr(report, outcome, getattr(report, outcome) + 1)
    return None if outcome == "unchanged" else poem_id


def load_poems(
    path: Path,
    progress: Callable[[int], None] | None = None,
    on_error: Callable[[int, str], None] | None = None,
    on_batch: Callable[[list[int]], None] | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Loads the file, calling `on_error` for each bad row as it is met and `on_batch` with the
    ids of the poems that changed. Raises UnreadableFile for a file refused whole or that could
    not be read to its end (after handing what was written to `on_batch`)."""
    report = report if report is not None else LoadReport()
    stream, kind = open_poem_file(path)
    changed: list[int] = []
    line = 0
    try:
        with stream:
            for count, (line, row) in enumerate(read_rows(stream, kind, report.warn), start=1):
                try:
                    poem_id = _load_row(line, row, report)
                except BadRow as e:
                    report.error(line, str(e))
                    if on_error:
                        on_error(line, str(e))
                    poem_id = None
                if poem_id is not None:
                    changed.append(poem_id)
                if count % BATCH == 0:
                    _flush(changed, on_batch)
                if progress:
                    progress(count)
    except OSError as e:
        raise UnreadableFile(f"reading stopped after line {line}: {e.strerror or e}") from e
    finally:
        _flush(changed, on_batch)
    return report


def _flush(changed: list[int], on_batch: Callable[[list[int]], None] | None) -> None:
    reset_queries()  # with DEBUG on, Django keeps every query (and its long texts) otherwise
    if changed and on_batch:
        on_batch(list(changed))
    changed.clear()
