"""Serializer fields that take JSON types at their word.

DRF's CharField accepts a number (`{"question": 5}` becomes "5") and its integer and
primary-key fields accept booleans, floats and numeric strings (`true` is 1, `5.9` is 5). The
API refuses those with a 400 `malformed_json`, as the contract says of wrong JSON types.
"""

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ParseError

MAX_ID = 2**63 - 1  # the largest key any of our databases stores


def _wrong_type(field: serializers.Field, wanted: str) -> ParseError:
    return ParseError(f"Malformed JSON: '{field.field_name}' must be a JSON {wanted}.")


def require_integer(field: serializers.Field, data: Any) -> int:
    """`data` if it is a JSON integer (not a boolean, float or string), else malformed_json."""
    if isinstance(data, bool) or not isinstance(data, int):
        raise _wrong_type(field, "integer")
    return data


def require_string(field: serializers.Field, data: Any) -> str:
    if not isinstance(data, str):
        raise _wrong_type(field, "string")
    return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(require_string(self, data))


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(require_string(self, data))


class StrictSlugRelatedField(serializers.SlugRelatedField):
    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(require_string(self, data))


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        return super().to_internal_value(require_integer(self, data))


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id that must be a JSON integer; one no row can have is simply not found."""

    def to_internal_value(self, data: Any) -> Any:
        value = require_integer(self, data)
        if not 0 < value <= MAX_ID:
            self.fail("does_not_exist", pk_value=value)
        return super().to_internal_value(value)
