"""OpenAPI schema post-processing: the error envelope, declared where it answers.

Every API error answers the one envelope (imagineer/core/errors.py) with a 4xx status, on every
endpoint: a bad token is a 401 on a public read, a page past the end a 404 on a list. Declaring
only the success responses made every such answer "undocumented" to a client generator or a
schema checker, and the envelope's shape was written down nowhere but the docs.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "ErrorEnvelope"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: see docs/API.md 'Errors: one envelope'.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "trace_id", "timestamp"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. validation_error."},
                "message": {"type": "string", "description": "What was wrong and what would be accepted."},
                "details": {"type": "object", "additionalProperties": True},
                "trace_id": {"type": "string", "description": "The request's X-Request-ID."},
                "timestamp": {"type": "string", "format": "date-time"},
            },
        }
    },
}
ERROR_CONTENT = {"application/json": {"schema": ERROR_REF}}
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def declare_error_envelope(result: dict[str, Any], generator, **kwargs) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK: every operation may answer 4XX with the envelope.

    Error responses a view declares by status (400, 404, 503 …) keep their description and get the
    envelope as their body when they named none.
    """
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if str(status)[0] in "45" and "content" not in response:
                    response["content"] = ERROR_CONTENT
            responses.setdefault("4XX", {"description": "An error, in the one envelope.", "content": ERROR_CONTENT})
    return result
