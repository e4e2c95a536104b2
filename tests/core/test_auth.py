"""Sign-in: Google through allauth (Google's endpoints answered by a local server), DRF tokens."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db
CLIENT_ID = "local-test-client.apps.googleusercontent.com"


class FakeGoogle:
    """Google's token and userinfo endpoints, on 127.0.0.1, recording what they were asked."""

    def __init__(self, email: str, verified: bool = True):
        self.email, self.verified = email, verified
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body: dict):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"] or 0)).decode()
                fake.requests.append(("POST " + self.path, body))
                now = int(time.time())
                id_token = jwt.encode(
                    {
                        "iss": "https://accounts.google.com",
                        "aud": CLIENT_ID,
                        "sub": "google-uid-" + fake.email,
                        "email": fake.email,
                        "email_verified": fake.verified,
                        "name": "Test Person",
                        "iat": now,
                        "exp": now + 600,
                    },
                    "not-checked-since-fetched-directly",
                    algorithm="HS256",
                )
                self._json({"access_token": "at-123", "expires_in": 600, "token_type": "Bearer", "id_token": id_token})

            def do_GET(self):
                fake.requests.append(("GET " + self.path, self.headers.get("Authorization", "")))
                self._json(
                    {"id": "google-uid-" + fake.email, "email": fake.email, "picture": "https://example.test/p.png"}
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def google(monkeypatch, settings):
    settings.IMAGINEER_ADMIN_EMAILS = ["boss@example.com"]
    SocialApp.objects.create(provider="google", name="Google", client_id=CLIENT_ID, secret="s3cret")
    servers = []

    def start(email: str, verified: bool = True) -> FakeGoogle:
        fake = FakeGoogle(email, verified)
        servers.append(fake)
        monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", fake.base + "/token")
        monkeypatch.setattr(GoogleOAuth2Adapter, "identity_url", fake.base + "/userinfo")
        return fake

    yield start
    for fake in servers:
        fake.close()


def sign_in_with_google(client: Client, **extra) -> tuple:
    start = client.post("/accounts/google/login/", **extra)
    assert start.status_code == 302, start.content[:300]
    authorize = urlparse(start["Location"])
    params = parse_qs(authorize.query)
    callback = client.get(
        "/accounts/google/login/callback/", {"code": "auth-code-1", "state": params["state"][0]}, **extra
    )
    return params, callback


def test_google_sign_in_creates_user_and_promotes_admin_email(google):
    fake = google("Boss@Example.com")
    client = Client()
    params, callback = sign_in_with_google(client)
    assert params["client_id"] == [CLIENT_ID]
    assert callback.status_code == 302, callback.content[:500]
    user = get_user_model().objects.get(email__iexact="boss@example.com")
    assert user.is_staff and user.is_superuser
    assert SocialAccount.objects.filter(user=user, provider="google").exists()
    assert [r[0] for r in fake.requests] == ["POST /token", "GET /userinfo"]
    assert "code=auth-code-1" in fake.requests[0][1]
    assert fake.requests[1][1] == "Bearer at-123"
    assert client.get("/admin/").status_code == 200


def test_google_sign_in_of_other_email_is_not_admin(google):
    google("someone@example.com")
    client = Client()
    _, callback = sign_in_with_google(client)
    assert callback.status_code == 302
    user = get_user_model().objects.get(email="someone@example.com")
    assert not user.is_staff and not user.is_superuser
    assert client.get("/admin/").status_code == 302  # sent to the admin login page


def test_unverified_admin_email_is_not_promoted(google):
    google("boss@example.com", verified=False)
    _, callback = sign_in_with_google(Client())
    assert callback.status_code == 302
    assert not get_user_model().objects.get(email="boss@example.com").is_staff


def test_callback_url_is_https_behind_a_tls_proxy(google, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["imagineer.example.com", "testserver"]
    google("someone@example.com")
    params, _ = sign_in_with_google(
        Client(), HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="imagineer.example.com"
    )
    assert params["redirect_uri"] == ["https://imagineer.example.com/accounts/google/login/callback/"]


def test_token_auth_and_drf_create_token_command(admin_user):
    out = StringIO()
    call_command("drf_create_token", admin_user.username, stdout=out)
    key = Token.objects.get(user=admin_user).key
    assert key in out.getvalue()
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/albums/", {"name": "Via token"}, content_type="application/json").status_code == 201


def test_revoked_token_stops_working(admin_user, api_client):
    token = Token.objects.create(user=admin_user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api_client.post("/api/albums/", {"name": "a"}).status_code == 201
    token.delete()
    assert_envelope(api_client.post("/api/albums/", {"name": "b"}), 401, "authentication_failed")


def test_session_auth_serves_browsable_api(admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/api/albums/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"<html" in response.content.lower()


def test_admin_login_page_offers_google_sign_in():
    html = Client().get("/admin/login/?next=/admin/").content.decode()
    assert 'action="/accounts/google/login/?next=/admin/"' in html
    assert "Sign in with Google" in html
