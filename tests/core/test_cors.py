"""A separate web frontend (CORS): which origins may read the API's answers, and what the session and
CSRF rules ask of a page there (docs/FRONTEND.md). The real browser is in
tests/browser/test_cors_frontend.py; these are the server's answers, header by header.
"""

from __future__ import annotations

import json

import pytest
from corsheaders.checks import check_settings
from django.test import Client

from albums.models import Album
from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db

FRONTEND = "https://app.example.com"
ELSEWHERE = "https://elsewhere.example.net"
EXPOSED = "Retry-After, Location, X-Request-ID"


def cors_headers(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items() if name.lower().startswith("access-")}


def preflight(client: Client, path: str, origin: str, method: str = "POST", headers: str = "content-type,x-csrftoken"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


@pytest.fixture
def frontend_allowed(settings):
    """IMAGINEER_CORS_ALLOWED_ORIGINS=https://app.example.com, as settings.py turns it into settings."""
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]
    settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, FRONTEND]


def csrf_client() -> tuple[Client, str]:
    """A browser that checks CSRF as a real one does, and the token a frontend reads from /api/auth/csrf."""
    client = Client(enforce_csrf_checks=True)
    response = client.get("/api/auth/csrf", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 200
    return client, response.json()["csrf_token"]


def post_json(client: Client, path: str, body: dict, *, origin: str = FRONTEND, token: str | None = None):
    extra = {"HTTP_ORIGIN": origin, **({"HTTP_X_CSRFTOKEN": token} if token else {})}
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


# --- Off by default -------------------------------------------------------------------------


def test_no_origin_is_allowed_by_default(settings):
    assert settings.IMAGINEER_CORS_ALLOWED_ORIGINS == []
    assert settings.CORS_ALLOWED_ORIGINS == []


@pytest.mark.parametrize("origin", [FRONTEND, ELSEWHERE])
def test_by_default_no_answer_carries_cors_headers(origin, api_client):
    assert cors_headers(preflight(api_client, "/api/albums/", origin)) == {}
    assert cors_headers(api_client.get("/api/albums/", HTTP_ORIGIN=origin)) == {}
    assert cors_headers(api_client.get("/api/auth/me", HTTP_ORIGIN=origin)) == {}
    assert cors_headers(api_client.get("/_allauth/browser/v1/config", HTTP_ORIGIN=origin)) == {}


@pytest.mark.parametrize(
    ("origin", "check_id"),
    [
        ("*", "corsheaders.E013"),
        ("app.example.com", "corsheaders.E013"),
        ("https://app.example.com/", "corsheaders.E014"),
    ],
)
def test_an_origin_that_is_not_scheme_host_port_stops_the_site(settings, origin, check_id):
    """No wildcard, no bare host, no path: manage.py check (and so every start) fails on them."""
    settings.CORS_ALLOWED_ORIGINS = [origin]
    assert [error.id for error in check_settings()] == [check_id]


# --- One origin allowed ---------------------------------------------------------------------


def test_allowed_origin_preflight_may_send_credentials_json_and_the_csrf_header(frontend_allowed, api_client):
    response = preflight(api_client, "/api/albums/", FRONTEND, headers="content-type,x-csrftoken")
    headers = cors_headers(response)
    assert response.status_code == 200
    assert headers["access-control-allow-origin"] == FRONTEND  # never "*": credentials need the exact origin
    assert headers["access-control-allow-credentials"] == "true"
    assert {"content-type", "x-csrftoken", "authorization"} <= set(headers["access-control-allow-headers"].split(", "))
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(headers["access-control-allow-methods"].split(", "))


def test_allowed_origin_reads_answers_and_the_headers_it_needs(frontend_allowed, api_client):
    response = api_client.get("/api/albums/", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 200
    assert cors_headers(response) == {
        "access-control-allow-origin": FRONTEND,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": EXPOSED,
    }
    assert "origin" in response["Vary"].lower()  # a cache never hands one origin's answer to another


def test_allowed_origin_reads_error_envelopes(frontend_allowed, api_client):
    missing = api_client.get("/api/images/987654/", HTTP_ORIGIN=FRONTEND)
    assert_envelope(missing, 404, "not_found")
    assert cors_headers(missing)["access-control-allow-origin"] == FRONTEND
    anonymous = api_client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND)
    assert_envelope(anonymous, 401, "not_authenticated")
    assert cors_headers(anonymous)["access-control-allow-origin"] == FRONTEND


def test_other_origins_get_no_cors_headers(frontend_allowed, api_client):
    assert cors_headers(preflight(api_client, "/api/albums/", ELSEWHERE)) == {}
    assert cors_headers(api_client.get("/api/auth/me", HTTP_ORIGIN=ELSEWHERE)) == {}
    # An origin differs by scheme and port too: http:// or another port is not the allowed one.
    assert cors_headers(api_client.get("/api/albums/", HTTP_ORIGIN="http://app.example.com")) == {}
    assert cors_headers(api_client.get("/api/albums/", HTTP_ORIGIN="https://app.example.com:8443")) == {}


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/login/", "/accounts/login/", "/healthz", "/static/admin/css/base.css"]
)
def test_pages_outside_the_api_never_get_cors_headers(frontend_allowed, path):
    client = Client()
    assert cors_headers(client.get(path, HTTP_ORIGIN=FRONTEND)) == {}
    assert cors_headers(preflight(client, path, FRONTEND)) == {}


def test_headless_sign_in_api_gets_cors_headers(frontend_allowed, api_client):
    response = api_client.get("/_allauth/browser/v1/config", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 200
    assert cors_headers(response)["access-control-allow-origin"] == FRONTEND


def test_csrf_endpoint_gives_the_token_in_the_body_and_the_cookie(frontend_allowed):
    client = Client()
    response = client.get("/api/auth/csrf", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 200
    assert set(response.json()) == {"csrf_token"}
    assert response.cookies["csrftoken"].value
    assert cors_headers(response)["access-control-allow-origin"] == FRONTEND


# --- Session and CSRF from the frontend's origin ----------------------------------------------


def test_cross_origin_write_without_the_csrf_token_is_refused(frontend_allowed, admin_user):
    client, _ = csrf_client()
    client.force_login(admin_user)
    response = post_json(client, "/api/albums/", {"name": "From the frontend"})
    error = assert_envelope(response, 403, "permission_denied")
    assert "CSRF" in error["message"]
    assert cors_headers(response)["access-control-allow-origin"] == FRONTEND  # the page can read why
    assert not Album.objects.exists()


def test_cross_origin_write_with_the_csrf_token_succeeds(frontend_allowed, admin_user):
    client, _ = csrf_client()
    client.force_login(admin_user)
    token = client.get("/api/auth/csrf", HTTP_ORIGIN=FRONTEND).json()["csrf_token"]
    response = post_json(client, "/api/albums/", {"name": "From the frontend"}, token=token)
    assert response.status_code == 201, response.content[:300]
    assert Album.objects.get().name == "From the frontend"
    assert cors_headers(response)["access-control-expose-headers"] == EXPOSED


def test_write_from_an_origin_not_allowed_is_refused_even_with_the_token(frontend_allowed, admin_user):
    """A same-site page on another origin can read the csrftoken cookie; Django's Origin check stops it."""
    client, _ = csrf_client()
    client.force_login(admin_user)
    token = client.get("/api/auth/csrf").json()["csrf_token"]
    response = post_json(client, "/api/albums/", {"name": "Forged"}, origin=ELSEWHERE, token=token)
    error = assert_envelope(response, 403, "permission_denied")
    assert "Origin checking failed" in error["message"]
    assert cors_headers(response) == {}
    assert not Album.objects.exists()


def test_frontend_signs_in_reads_me_and_signs_out(frontend_allowed, plain_user):
    plain_user.set_password("correct horse battery")
    plain_user.save()
    client, token = csrf_client()

    signed_in = post_json(
        client,
        "/_allauth/browser/v1/auth/login",
        {"username": plain_user.username, "password": "correct horse battery"},
        token=token,
    )
    assert signed_in.status_code == 200, signed_in.content[:300]
    assert signed_in.json()["meta"]["is_authenticated"] is True
    assert cors_headers(signed_in)["access-control-allow-origin"] == FRONTEND

    me = client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND)
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["username"]) == (plain_user.pk, plain_user.username)

    # Signing in rotates the CSRF token: the one taken before is refused, a fresh one works.
    stale = client.delete("/_allauth/browser/v1/auth/session", HTTP_ORIGIN=FRONTEND, HTTP_X_CSRFTOKEN=token)
    assert stale.status_code == 403
    fresh = client.get("/api/auth/csrf", HTTP_ORIGIN=FRONTEND).json()["csrf_token"]
    signed_out = client.delete("/_allauth/browser/v1/auth/session", HTTP_ORIGIN=FRONTEND, HTTP_X_CSRFTOKEN=fresh)
    assert signed_out.status_code == 401  # allauth's answer for "no one is signed in now"
    assert signed_out.json()["meta"]["is_authenticated"] is False
    assert_envelope(client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND), 401, "not_authenticated")


def test_sign_in_without_the_csrf_token_is_refused(frontend_allowed, plain_user):
    plain_user.set_password("correct horse battery")
    plain_user.save()
    client, _ = csrf_client()
    response = post_json(
        client,
        "/_allauth/browser/v1/auth/login",
        {"username": plain_user.username, "password": "correct horse battery"},
    )
    assert response.status_code == 403
    assert_envelope(client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND), 401, "not_authenticated")
    plain_user.refresh_from_db()
    assert plain_user.last_login is None


def test_wrong_password_answers_a_readable_error(frontend_allowed, plain_user):
    client, token = csrf_client()
    response = post_json(
        client, "/_allauth/browser/v1/auth/login", {"username": plain_user.username, "password": "wrong"}, token=token
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "username_password_mismatch"
    assert cors_headers(response)["access-control-allow-origin"] == FRONTEND
