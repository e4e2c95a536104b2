"""docs/API.md and the OpenAPI schema describe the same operations, so neither drifts from the code.

An endpoint row is a table row whose first cell names methods and paths:
`GET / PATCH `/api/albums/{id}/``, `GET `/api/x/` , `/api/x/{id}/``, groups joined by `;`
(`GET `/a/` ; POST `/a/{id}/cancel/``). Path parameters match whatever they are called.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.security.routes import routed_operations

pytestmark = pytest.mark.django_db

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path).rstrip("/") or "/"


def documented_operations(text: str) -> set[tuple[str, str]]:
    operations = set()
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.split("|")[1]
        for group in first_cell.split(";"):
            methods = [word for word in re.findall(r"[A-Z]+", group.split("`")[0]) if word in METHODS]
            paths = re.findall(r"`(/api/[^`\s]*)`", group)
            operations |= {(method, normalise(path)) for method in methods for path in paths}
    return operations


def schema_operations(client) -> set[tuple[str, str]]:
    schema = client.get("/api/schema/?format=json").json()
    return {
        (method.upper(), normalise(path))
        for path, item in schema["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def test_the_parser_reads_every_form_of_row():
    rows = "\n".join(
        [
            "| GET `/api/a/` , `/api/a/{id}/` | who | what |",
            "| PATCH / DELETE `/api/a/{pk}/` | who | what |",
            "| GET, PATCH `/api/b/{report_id}` | what |",
            "| GET `/api/c/` ; POST `/api/c/{id}/cancel/` | who | what |",
            "| job kind | POST `/api/not/a/row/` | `/api/nor/this/` |",
        ]
    )
    assert documented_operations(rows) == {
        ("GET", "/api/a"),
        ("GET", "/api/a/{}"),
        ("PATCH", "/api/a/{}"),
        ("DELETE", "/api/a/{}"),
        ("GET", "/api/b/{}"),
        ("PATCH", "/api/b/{}"),
        ("GET", "/api/c"),
        ("POST", "/api/c/{}/cancel"),
    }


def test_every_operation_of_the_schema_has_a_row_in_api_md(api_client):
    documented = documented_operations(API_MD.read_text(encoding="utf-8"))
    assert sorted(schema_operations(api_client) - documented) == [], "operations missing from docs/API.md"


def test_every_row_of_api_md_is_an_operation_the_api_serves(api_client):
    """A row is an operation of the schema, or a page outside it (root, schema, docs) the URL conf routes."""
    routed = {(method, normalise(path)) for method, path in routed_operations()}
    served = schema_operations(api_client) | routed
    unknown = documented_operations(API_MD.read_text(encoding="utf-8")) - served
    assert sorted(unknown) == [], "docs/API.md has rows for operations the API does not serve"


def test_pages_outside_the_schema_are_few_and_known(api_client):
    """Only the root and the schema's own pages may be documented without being in the schema."""
    documented = documented_operations(API_MD.read_text(encoding="utf-8"))
    outside = {path for _, path in documented - schema_operations(api_client)}
    assert outside <= {"/api", "/api/schema", "/api/docs", "/api/redoc"}
