from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import AdminFactory, UserFactory


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Every test stores files in its own empty media folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    yield root


@pytest.fixture(autouse=True)
def runtime_config_file(settings, tmp_path) -> Path:
    """Every test has its own runtime config path (no file: the defaults) and an empty config cache."""
    from imagineer.core.runtime_config import store

    path = tmp_path / "runtime-config.yaml"
    settings.IMAGINEER_CONFIG = path
    store.clear()
    yield path
    store.clear()


@pytest.fixture(autouse=True)
def _no_credentials_in_logs(request):
    """Suites that handle tokens and sessions (security, faults, browser, ...) must log none of them."""
    from tests.log_scan import CredentialScan, scanned

    if not scanned(request.node.nodeid):
        yield
        return
    with CredentialScan() as scan:
        yield
    leaks = scan.leaks()
    assert not leaks, "\n".join(leaks)


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()  # rate-limit counters live in the cache
    yield


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".readyz" not in p.parts)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_user(db):
    return AdminFactory()


@pytest.fixture
def plain_user(db):
    return UserFactory()


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def admin_browser(admin_user) -> Client:
    """The admin site as a signed-in admin sees it."""
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def admin_client_api(admin_user) -> APIClient:
    return _token_client(admin_user)


@pytest.fixture
def user_client_api(plain_user) -> APIClient:
    return _token_client(plain_user)


@pytest.fixture
def other_user_client_api(db) -> APIClient:
    return _token_client(UserFactory())


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "trace_id", "timestamp"}, error
    assert error["message"]
    assert error["trace_id"] == response["X-Request-ID"]
    if code is not None:
        assert error["code"] == code, error
    return error
