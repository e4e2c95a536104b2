"""One shape for every list, one trailing-slash rule for every route."""

from __future__ import annotations

import re

import pytest
from django.urls import resolve

from tests.security.routes import routed_operations

pytestmark = pytest.mark.django_db

ENVELOPE_REQUIRED = {"count", "results"}


def _schema(client) -> dict:
    return client.get("/api/schema/?format=json").json()


def _list_operations(schema: dict) -> list[tuple[str, dict]]:
    return [
        (path, item["get"])
        for path, item in schema["paths"].items()
        if "get" in item and item["get"]["operationId"].endswith("_list")
    ]


def _is_envelope(schema: dict, response_schema: dict) -> bool:
    ref = response_schema.get("$ref", "")
    component = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    properties = component.get("properties", {})
    return (
        set(component.get("required", [])) >= ENVELOPE_REQUIRED
        and properties.get("count", {}).get("type") == "integer"
        and all(properties.get(link, {}).get("nullable") for link in ("next", "previous"))
        and properties.get("results", {}).get("type") == "array"
    )


def test_every_list_operation_answers_the_paginated_envelope(api_client):
    schema = _schema(api_client)
    operations = _list_operations(schema)
    assert len(operations) >= 10, "the walk found the list operations"
    other_shapes = [
        path
        for path, operation in operations
        if not _is_envelope(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    ]
    assert other_shapes == []


def test_a_page_is_the_envelope_on_the_wire(admin_client_api):
    """The schema's word checked once against an answer, on a list that used to be a bare array."""
    page = admin_client_api.get("/api/generation/models/?page_size=1").json()
    assert set(page) == {"count", "next", "previous", "results"}


def _concrete(template: str) -> str:
    return re.sub(r"\{\w+\}", "1", template)


API_ROUTES = sorted({path for _, path in routed_operations() if path.startswith("/api/")})


@pytest.mark.parametrize("template", API_ROUTES)
def test_the_trailing_slash_is_optional(template):
    with_slash = _concrete(template.rstrip("/") + "/")
    without = with_slash.rstrip("/")
    assert resolve(with_slash).url_name == resolve(without).url_name, template


def test_the_walk_found_every_app_and_the_schema_pages():
    prefixes = {"/api/images/", "/api/generation/", "/api/labels/", "/api/training/", "/api/admin/", "/api/schema/"}
    assert {prefix for prefix in prefixes if any(path.startswith(prefix) for path in API_ROUTES)} == prefixes


@pytest.mark.parametrize("path", ["/api/images", "/api/labels/stats", "/api/admin/config", "/api/schema"])
def test_a_list_answers_the_same_with_and_without_the_slash(admin_client_api, path):
    without, with_slash = admin_client_api.get(path), admin_client_api.get(path + "/")
    assert (without.status_code, with_slash.status_code) == (200, 200)
    assert without.content == with_slash.content
