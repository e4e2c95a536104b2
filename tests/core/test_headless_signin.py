"""allauth's headless sign-in API (/_allauth/browser/v1/, for a frontend on another origin) opens no
door the site's own sign-in pages keep shut: no local sign-up, Google admits exactly whom the normal
Google sign-in admits (imagineer/core/signup.py), it sends people back only to this site or an
allowed frontend, and only the browser client is served (no token-issuing "app" client).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from tests.core.fake_google import GoogleSignIns, sign_in_with_google

pytestmark = pytest.mark.django_db
User = get_user_model()

FRONTEND = "https://app.example.com"
SIGNED_IN_PAGE = f"{FRONTEND}/signed-in"


@pytest.fixture
def frontend_allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]
    settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, FRONTEND]


@pytest.fixture
def google(monkeypatch, settings, frontend_allowed):
    settings.IMAGINEER_ADMIN_EMAILS = ["boss@example.com"]
    settings.IMAGINEER_SIGNUP = "closed"
    settings.IMAGINEER_SIGNUP_EMAILS = []
    settings.IMAGINEER_SIGNUP_DOMAINS = []
    with GoogleSignIns(monkeypatch) as sign_ins:
        yield sign_ins.start


def csrf_client() -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    return client, client.get("/api/auth/csrf", HTTP_ORIGIN=FRONTEND).json()["csrf_token"]


def headless_google_sign_in(callback_url: str = SIGNED_IN_PAGE) -> tuple[Client, object, object]:
    """What a frontend page does: a form POST (a navigation, not fetch) to the redirect endpoint,
    then Google sends the browser to the site's callback. (client, the first answer, the callback's)."""
    client, token = csrf_client()
    start = client.post(
        "/_allauth/browser/v1/auth/provider/redirect",
        {"provider": "google", "callback_url": callback_url, "process": "login", "csrfmiddlewaretoken": token},
        HTTP_ORIGIN=FRONTEND,
    )
    if start.status_code != 302 or not start["Location"].startswith("https://accounts.google.com/"):
        return client, start, None
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    callback = client.get("/accounts/google/login/callback/", {"code": "auth-code-1", "state": state})
    return client, start, callback


def signed_in_user(client: Client):
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


# --- Local sign-up stays closed ----------------------------------------------------------------


def test_config_says_local_sign_up_is_closed(frontend_allowed):
    config = Client().get("/_allauth/browser/v1/config", HTTP_ORIGIN=FRONTEND).json()["data"]
    assert config["account"]["is_open_for_signup"] is False


def test_local_sign_up_through_headless_is_refused(frontend_allowed):
    client, token = csrf_client()
    response = client.post(
        "/_allauth/browser/v1/auth/signup",
        json.dumps({"username": "newcomer", "email": "newcomer@example.com", "password": "a long new password 1"}),
        content_type="application/json",
        HTTP_ORIGIN=FRONTEND,
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 403
    assert response.json() == {"status": 403}
    assert not User.objects.exists()
    assert SESSION_KEY not in client.session


# --- Google: the same rules as the normal flow -------------------------------------------------


@pytest.mark.parametrize(
    ("email", "verified", "admitted"),
    [
        ("boss@example.com", True, True),  # IMAGINEER_ADMIN_EMAILS
        ("someone@example.com", True, False),  # closed sign-up, not invited
        ("boss@example.com", False, False),  # an unverified address counts for nothing
    ],
)
def test_headless_google_sign_in_admits_whom_the_normal_flow_admits(google, email, verified, admitted):
    google(email, verified)
    client, _, callback = headless_google_sign_in()
    assert callback is not None and callback.status_code == 302, getattr(callback, "content", b"")[:500]
    back = urlsplit(callback["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == SIGNED_IN_PAGE  # back to the frontend either way
    headless_user = signed_in_user(client)
    if admitted:
        assert headless_user is not None and headless_user.email == email
        assert "error" not in parse_qs(back.query)
    else:
        assert headless_user is None and not User.objects.exists()
        assert parse_qs(back.query)["error"] == ["signup_closed"]

    User.objects.all().delete()
    google(email, verified)
    normal = Client()
    sign_in_with_google(normal)
    assert (signed_in_user(normal) is not None) is admitted


def test_headless_google_sign_in_returns_only_to_an_allowed_origin(google):
    google("boss@example.com")
    _, start, callback = headless_google_sign_in(callback_url="https://elsewhere.example.net/steal")
    assert callback is None  # Google was never asked
    assert start.status_code == 401 and not start.has_header("Location")  # allauth's "login failure" page
    assert not User.objects.exists()


# --- Only what a browser frontend needs is served ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/_allauth/app/v1/config",  # the "app" client: session tokens instead of cookies
        "/_allauth/app/v1/auth/login",
        "/_allauth/app/v1/tokens/refresh",
        "/_allauth/browser/v1/tokens/refresh",
        "/_allauth/openapi.json",  # HEADLESS_SERVE_SPECIFICATION is off
        "/_allauth/openapi.html",
    ],
)
def test_only_the_browser_client_is_served(path):
    assert Client().get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/_allauth/browser/v1/account/phone",
        "/_allauth/browser/v1/auth/phone/verify",
        "/_allauth/browser/v1/auth/phone/verify/resend",
        "/_allauth/browser/v1/auth/provider/token",
    ],
)
def test_routes_we_do_not_offer_are_not_found_for_anyone(path, admin_user):
    signed_in = Client()
    signed_in.force_login(admin_user)
    for client in (Client(), signed_in):
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(client, method)(path, content_type="application/json")
            assert response.status_code == 404, (method, path, response.status_code)
