"""The OpenAPI schema tells the truth about errors: every operation may answer the contract's
error body (`{"error": {"code", "message", "details"?}}`) with the statuses below, so clients
(and the schemathesis run in tests/test_schema_fuzz.py) can rely on the documented shape."""

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, stable: what clients branch on"},
                "message": {"type": "string", "description": "for people"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
# What any operation may answer besides its own successes. 5xx are documented too (a 503 is the
# product's normal answer to overload or a database outage); tests still treat any 5xx as a bug.
ERROR_STATUSES = {
    "400": "Malformed JSON or invalid fields.",
    "401": "No or bad credentials.",
    "403": "Not allowed (staff only, or a CSRF failure).",
    "404": "No such resource (another user's is as absent as a missing one).",
    "405": "Method not allowed.",
    "409": "Conflicts with the resource's state.",
    "413": "The request body is too large.",
    "415": "Unsupported media type.",
    "422": "Understood but refused (for example an Idempotency-Key reused with another body).",
    "429": "Throttled; see Retry-After.",
    "500": "A bug on our side.",
    "503": "Overloaded or a dependency is down; see Retry-After.",
}


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the error component and responses on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, description in ERROR_STATUSES.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result
