"""Sign-in: Google through allauth (Google's endpoints answered by a local server), DRF tokens."""

from io import StringIO

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.assertions import assert_envelope
from tests.core.fake_google import CLIENT_ID, GoogleSignIns, sign_in_with_google

pytestmark = pytest.mark.django_db


@pytest.fixture
def google(monkeypatch, settings):
    settings.IMAGINEER_ADMIN_EMAILS = ["boss@example.com"]
    with GoogleSignIns(monkeypatch) as sign_ins:
        yield sign_ins.start


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


def test_google_sign_in_of_other_email_is_not_admin(google, settings):
    settings.IMAGINEER_SIGNUP = "open"  # closed (the default) would make no account: test_signup.py
    google("someone@example.com")
    client = Client()
    _, callback = sign_in_with_google(client)
    assert callback.status_code == 302
    user = get_user_model().objects.get(email="someone@example.com")
    assert not user.is_staff and not user.is_superuser
    assert client.get("/admin/").status_code == 302  # sent to the admin login page


def test_unverified_admin_email_is_not_promoted(google, settings):
    settings.IMAGINEER_SIGNUP = "open"  # an account for anybody, but admin only by a verified address
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
