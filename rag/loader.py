"""Loading poems from JSON, JSON Lines or CSV: idempotent by temple + number; a bad row is
reported with its line and skipped while the good rows still load."""

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import DatabaseError, transaction

from rag.models import LANGUAGES, TOPICS, Poem, Temple

REQUIRED = ("temple", "number", "title", "rank", "verse", "meaning")
MAX_NUMBER = 2_147_483_647  # PositiveIntegerField's range on every database
_LANGS = {code for code, _ in LANGUAGES}


class BadRow(Exception):
    pass


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    poem_ids: list[int] = field(default_factory=list)


def read_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line, row) pairs; a row that cannot be parsed comes as (line, error message)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            yield reader.line_num, _from_csv(row)
    elif text.lstrip().startswith("["):
        yield from _array_items(text)
    else:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                yield line_no, f"invalid JSON: {e.msg}"


def _array_items(text: str) -> Iterator[tuple[int, dict | str]]:
    """A JSON array's items, each with the line it starts on; a syntax error ends the file."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    line, counted_to = 1, 0  # lines counted incrementally: a large file stays linear

    def line_at(position: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, position)
        counted_to = position
        return line

    while True:
        at = _skip_space(text, at)
        if text.startswith("]", at):
            return
        try:
            item, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as e:
            yield e.lineno, f"invalid JSON: {e.msg}"
            return
        yield line_at(at), item
        at = _skip_space(text, end)
        if text.startswith(",", at):
            at += 1
        elif not text.startswith("]", at):
            yield line_at(at), "invalid JSON: expected ',' or ']'"
            return


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _from_csv(row: dict) -> dict:
    advice = {t: row.pop(f"advice_{t}", "") or "" for t in TOPICS}
    return {**row, "advice": {t: v for t, v in advice.items() if v}}


def clean_row(row: object) -> dict:
    if not isinstance(row, dict):
        raise BadRow("not an object")
    missing = [k for k in REQUIRED if not str(row.get(k) or "").strip()]
    if missing:
        raise BadRow(f"missing {', '.join(missing)}")
    try:
        number = int(row["number"])
    except (TypeError, ValueError):
        raise BadRow(f"number {row['number']!r} is not a whole number") from None
    if not 1 <= number <= MAX_NUMBER:
        raise BadRow(f"number must be between 1 and {MAX_NUMBER}")
    language = row.get("language") or "en"
    if language not in _LANGS:
        raise BadRow(f"language {language!r} is not one of {', '.join(sorted(_LANGS))}")
    _check_lengths(row)
    advice = row.get("advice") or {}
    if not isinstance(advice, dict):
        raise BadRow("advice must be an object of topic: text")
    unknown = set(advice) - set(TOPICS)
    if unknown:
        raise BadRow(f"unknown advice topic(s): {', '.join(sorted(unknown))}")
    return {
        "temple": str(row["temple"]).strip(),
        "temple_name": str(row.get("temple_name") or row["temple"]).strip(),
        "number": number,
        "fields": {
            "title": str(row["title"]).strip(),
            "rank": str(row["rank"]).strip(),
            "verse": str(row["verse"]).strip(),
            "meaning": str(row["meaning"]).strip(),
            "language": language,
            "advice": {t: str(v).strip() for t, v in advice.items() if str(v).strip()},
        },
    }


def _check_lengths(row: dict) -> None:
    """What the database would refuse (PostgreSQL enforces lengths), said per row instead."""
    try:
        validate_slug(str(row["temple"]).strip())
    except ValidationError:
        raise BadRow(f"temple {row['temple']!r} is not a slug (letters, digits, - and _)") from None
    limits = {
        "temple": Temple._meta.get_field("slug").max_length,
        "temple_name": Temple._meta.get_field("name").max_length,
        "title": Poem._meta.get_field("title").max_length,
        "rank": Poem._meta.get_field("rank").max_length,
    }
    for key, limit in limits.items():
        assert limit is not None  # each of these fields declares a max_length
        if len(str(row.get(key) or "").strip()) > limit:
            raise BadRow(f"{key} is longer than {limit} characters")


def _save(clean: dict, report: LoadReport) -> None:
    temple, _ = Temple.objects.get_or_create(slug=clean["temple"], defaults={"name": clean["temple_name"]})
    if temple.name != clean["temple_name"]:
        temple.name = clean["temple_name"]
        temple.save(update_fields=["name"])
    poem = Poem.objects.filter(temple=temple, number=clean["number"]).first()
    if poem is None:
        poem = Poem.objects.create(temple=temple, number=clean["number"], **clean["fields"])
        report.created += 1
    elif any(getattr(poem, k) != v for k, v in clean["fields"].items()):
        for k, v in clean["fields"].items():
            setattr(poem, k, v)
        poem.save(update_fields=[*clean["fields"], "updated_at"])
        report.updated += 1
    else:
        report.unchanged += 1
        return
    report.poem_ids.append(poem.id)


def load_poems(path: Path, progress: Callable[[int], None] | None = None) -> LoadReport:
    """Returns what changed; `report.poem_ids` are the poems to (re)index."""
    report = LoadReport()
    for count, (line, row) in enumerate(read_rows(path), start=1):
        try:
            if isinstance(row, str):
                raise BadRow(row)
            clean = clean_row(row)
            with transaction.atomic():
                _save(clean, report)
        except BadRow as e:
            report.errors.append((line, str(e)))
        except (DatabaseError, ValueError) as e:  # e.g. a NUL character PostgreSQL refuses
            report.errors.append((line, f"the database refused it: {e}"))
        if progress:
            progress(count)
    return report
