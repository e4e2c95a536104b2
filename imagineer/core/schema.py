"""The OpenAPI schema as a client generator reads it: errors, enums and request bodies.

Every API error answers the one envelope (imagineer/core/errors.py), on every endpoint: a bad
token is a 401 on a public read, a page past the end a 404 on a list. Declaring only the success
responses made every such answer "undocumented" to a client generator or a schema checker, and the
envelope's shape was written down nowhere but the docs. So:

- `ErrorAwareAutoSchema` (DEFAULT_SCHEMA_CLASS) names the error statuses an operation can answer,
  from what the operation is (a body, query or path parameters, who may call it, a job action);
- `declare_error_envelope` gives every error status the envelope as its body, and `4XX` for the rest;
- `name_inline_enums` makes every enum a named component, one per set of values, so a generated
  client has one `JobStatusEnum`, not one per filter parameter.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.openapi import AutoSchema
from inflection import camelize
from rest_framework.permissions import SAFE_METHODS

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


# What each error status means, where an operation can answer it (the codes are docs/API.md's).
ERROR_STATUSES = {
    "400": "Invalid input (validation_error, malformed_request, …): error.details.fields names each field.",
    "401": "No, or bad, credentials (not_authenticated, authentication_failed).",
    "403": "Not allowed for this caller (permission_denied, csrf_failed).",
    "404": "No such object, or not one the caller may see; a page past the end (not_found).",
    "409": "The job is not in a state that allows this (job_not_cancellable, job_not_retryable).",
    "429": "Over a rate limit (rate_limited, …); Retry-After says when to try again.",
    "413": "The request body is over the limit for anything but uploaded files (request_too_large).",
    "415": "The body is not in this operation's one content type (unsupported_media_type).",
    "503": "A service behind the API is unavailable (database_unavailable, cache_unavailable, …); see Retry-After.",
}
# Job actions: the lifecycle (imagineer/core/jobs.py) refuses them for a job in the wrong state.
JOB_STATE_ACTIONS = {"cancel", "retry"}


class ErrorAwareAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, naming the error statuses each operation can answer.

    A status a view declares itself (extend_schema(responses=...)) keeps its description. Other
    4xx statuses (405 for a method a path lacks, 406 for an Accept header, a 409 a service decides)
    are answered under `4XX`, or declared by the view that raises them.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status in self._error_statuses(operation):
            responses.setdefault(status, {"description": ERROR_STATUSES[status]})
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        has_query = any(p.get("in") == "query" for p in parameters)
        paginated = any(p.get("in") == "query" and p.get("name") == "page" for p in parameters)
        statuses = ["401", "503"]  # a bad token on any request; the database on any request
        if has_body or has_query:
            statuses.append("400")
        if self.method not in SAFE_METHODS or self._refuses_a_signed_in_user():
            statuses.append("403")
        if "{" in self.path or paginated:
            statuses.append("404")
        if getattr(self.view, "action", None) in JOB_STATE_ACTIONS:
            statuses.append("409")
        if self._calls_enforce_rate_limit():
            statuses.append("429")
        if has_body:
            statuses += ["413", "415"]
        return sorted(statuses)

    def _calls_enforce_rate_limit(self) -> bool:
        """Whether the view's handler counts the request against a rate limit (ratelimits.enforce_rate_limit).

        Read from the handler's code, so the schema follows the view; a limit enforced further down
        (in a helper or a service) is answered under `4XX`.
        """
        handler = getattr(self.view, getattr(self.view, "action", None) or self.method.lower(), None)
        code = getattr(inspect.unwrap(getattr(handler, "__func__", handler)), "__code__", None)
        return code is not None and "enforce_rate_limit" in code.co_names

    def _refuses_a_signed_in_user(self) -> bool:
        """Whether the view's permissions refuse a signed-in non-admin (a 403 on a read)."""
        user = get_user_model()(username="schema-probe", is_staff=False, is_superuser=False)  # never saved
        probe = SimpleNamespace(method=self.method, user=user, auth=None, query_params={}, data={})
        real_request = self.view.request
        self.view.request = probe  # get_permissions() may read the method or the action
        try:
            return not all(p.has_permission(probe, self.view) for p in self.view.get_permissions())
        except Exception:  # a permission that needs more than a probe: say it may refuse
            return True
        finally:
            self.view.request = real_request


ENUM_SCHEMA_KEYS = {"type", "enum", "description", "minLength", "maxLength", "x-spec-enum-id"}


def name_inline_enums(result: dict[str, Any], generator, **kwargs) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK (after postprocess_schema_enums): no anonymous enums.

    postprocess_schema_enums names the enums of serializer fields; those of filter parameters and
    hand-written field schemas stay inline, and a client generator makes a class for each one
    (`AlbumsListStatus`, `JobsListStatus` …). Each becomes a reference to the named enum with the
    same values, or to a new one named after where it is used.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    named: dict[tuple, str] = {}
    for name, schema in schemas.items():
        if "enum" in schema:
            named.setdefault(_enum_key(schema), name)

    def reference(schema: dict[str, Any], suggestions: list[str]) -> dict[str, Any]:
        key = _enum_key(schema)
        if key not in named:
            name = next((n for n in suggestions if n not in schemas), None)
            if name is None:
                raise ValueError(f"No free component name for the enum {schema['enum']}: tried {suggestions}")
            schemas[name] = {k: schema[k] for k in ("type", "enum", "description") if k in schema}
            named[key] = name
        ref = {"$ref": f"#/components/schemas/{named[key]}"}
        rest = {k: v for k, v in schema.items() if k not in ENUM_SCHEMA_KEYS}
        return {"allOf": [ref], **rest} if rest else ref

    def visit(node: Any, suggestions: list[str]) -> Any:
        if isinstance(node, list):
            return [visit(item, suggestions) for item in node]
        if not isinstance(node, dict):
            return node
        if "enum" in node:
            return reference(node, suggestions)
        out = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {
                    prop: visit(schema, [f"{s.removesuffix('Enum')}{_camel(prop)}Enum" for s in suggestions])
                    for prop, schema in value.items()
                }
            else:
                out[key] = visit(value, suggestions)
        return out

    for name in list(schemas):
        if "enum" not in schemas[name]:
            schemas[name] = visit(schemas[name], [f"{name}Enum"])
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    suggestions = [
                        f"{_camel(parameter['name'])}Enum",
                        f"{_camel(operation['operationId'])}{_camel(parameter['name'])}Enum",
                    ]
                    parameter["schema"] = visit(parameter["schema"], suggestions)
    return result


def _enum_key(schema: dict[str, Any]) -> tuple:
    return schema.get("type"), frozenset(schema["enum"])


def _camel(name: str) -> str:
    return camelize(name.replace("-", "_").replace(".", "_"))
