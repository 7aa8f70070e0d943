"""Strict JSON for every API body: what Python's `json` lets through is refused here.

`json` accepts NaN, Infinity and numbers like 1e400 (read as a float `inf`), and raises
RecursionError on deep nesting (shared/NOTES.md); DRF's JSONParser passes all of them on, and
they surface as 500s far from the parser. This parser refuses them up front with a 400
`malformed_json`, as it does invalid UTF-8 and bodies that are not JSON at all.
"""

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_OPENERS, _CLOSERS = b"[{", b"]}"


def nesting_depth(raw: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects in `raw`, read without recursion (strings
    skipped); stops counting past `limit`, so a 200 KB run of `[` costs one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in _CLOSERS:
            depth -= 1
    return deepest


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(raw: bytes, max_depth: int) -> Any:
    """Parse `raw` as strict JSON; ValueError says why it is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the body is not valid UTF-8 (byte {exc.start})") from exc
    if nesting_depth(raw, max_depth) > max_depth:
        raise ValueError(f"nesting deeper than {max_depth} levels")
    return json.loads(text, parse_float=_finite, parse_constant=_no_constants)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing non-finite numbers, deep nesting and invalid UTF-8."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return loads_strict(raw, settings.API_MAX_JSON_DEPTH)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ParseError(f"Malformed JSON: {exc}") from exc
