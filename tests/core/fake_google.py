"""Google's OAuth endpoints on 127.0.0.1, and a first-to-last Google sign-in through allauth's views.

`FakeGoogle` answers the token request (with an ID token for one address, verified or not) and the
userinfo request, and records both. `GoogleSignIns` points allauth's Google adapter at a fresh fake
per sign-in (a test module wraps it in its own fixture); `sign_in_with_google` drives the browser
side: the POST that starts the sign-in, then Google's redirect back to the callback.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter
from django.test import Client

CLIENT_ID = "local-test-client.apps.googleusercontent.com"


class FakeGoogle:
    """Google's token and userinfo endpoints, on 127.0.0.1, recording what they were asked.

    The Google account is `uid` (by default one per address) with the address `email`.
    """

    def __init__(self, email: str, verified: bool = True, uid: str | None = None):
        self.email, self.verified = email, verified
        self.uid = uid or "google-uid-" + email
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
                        "sub": fake.uid,
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
                self._json({"id": fake.uid, "email": fake.email, "picture": "https://example.test/p.png"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class GoogleSignIns:
    """The Google app in the database, and a fake Google per call: `start(email, verified, uid)`.

    Use as a context manager inside a fixture (it needs pytest's `monkeypatch`); leaving it stops
    every fake it started.
    """

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.servers: list[FakeGoogle] = []

    def __enter__(self) -> GoogleSignIns:
        SocialApp.objects.create(provider="google", name="Google", client_id=CLIENT_ID, secret="s3cret")
        return self

    def __exit__(self, *exc) -> None:
        for fake in self.servers:
            fake.close()

    def start(self, email: str, verified: bool = True, uid: str | None = None) -> FakeGoogle:
        fake = FakeGoogle(email, verified, uid)
        self.servers.append(fake)
        self.monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", fake.base + "/token")
        self.monkeypatch.setattr(GoogleOAuth2Adapter, "identity_url", fake.base + "/userinfo")
        return fake


def sign_in_with_google(client: Client, **extra) -> tuple:
    """Start a Google sign-in and come back to the callback; (the authorize URL's params, the
    callback's response)."""
    start = client.post("/accounts/google/login/", **extra)
    assert start.status_code == 302, start.content[:300]
    authorize = urlparse(start["Location"])
    params = parse_qs(authorize.query)
    callback = client.get(
        "/accounts/google/login/callback/", {"code": "auth-code-1", "state": params["state"][0]}, **extra
    )
    return params, callback
