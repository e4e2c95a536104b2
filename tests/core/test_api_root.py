"""`GET /api/` links to every top-level resource of every app, and to the schema and docs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db


def _schema_list_paths(client) -> set[str]:
    """GET paths of the schema that take no path parameter, without their trailing slash."""
    schema = client.get("/api/schema/?format=json").json()
    return {path.rstrip("/") for path, item in schema["paths"].items() if "get" in item and "{" not in path}


def _root_paths(client) -> dict[str, str]:
    links = client.get("/api/", HTTP_ACCEPT="application/json").json()
    return {urlsplit(url).path.rstrip("/"): url for url in links.values()}


def test_the_root_links_every_list_route_of_the_schema(api_client):
    missing = sorted(_schema_list_paths(api_client) - set(_root_paths(api_client)))
    assert missing == []


def test_the_root_links_the_schema_and_its_docs(api_client):
    links = api_client.get("/api/", HTTP_ACCEPT="application/json").json()
    assert {name: urlsplit(links[name]).path for name in ("schema", "docs", "redoc")} == {
        "schema": "/api/schema",
        "docs": "/api/docs",
        "redoc": "/api/redoc",
    }


def test_every_link_of_the_root_answers_an_admin(admin_client_api):
    answers = {path: admin_client_api.get(url).status_code for path, url in _root_paths(admin_client_api).items()}
    assert {path: status for path, status in answers.items() if status != 200} == {}


def test_the_root_links_nothing_that_needs_an_id(api_client):
    """Only what can be opened as is: a route like /api/images/{id}/ is reached from its list."""
    assert [path for path in _root_paths(api_client) if any(part.isdigit() for part in path.split("/"))] == []


def test_the_root_is_browsable(api_client):
    response = api_client.get("/api/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert b"/api/generation/jobs" in response.content


def test_a_write_to_the_root_is_refused_in_the_envelope(admin_client_api):
    error = assert_envelope(admin_client_api.post("/api/", {}, format="json"), 405, "method_not_allowed")
    assert "POST" in error["message"]
