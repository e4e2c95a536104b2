import socket

import pytest

from imagineer.settings import redis_cache
from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db


def test_healthz(api_client):
    response = api_client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


def test_readyz_all_ok(api_client):
    response = api_client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "cache": "ok", "media": "ok"},
    }


def test_readyz_names_unreachable_media(api_client, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.MEDIA_ROOT = blocker / "media"
    error = assert_envelope(api_client.get("/readyz"), 503, "not_ready")
    assert error["details"]["checks"] == {"database": "ok", "broker": "ok", "cache": "ok", "media": "unavailable"}
    assert str(tmp_path) not in error["message"]


def test_readyz_names_unreachable_broker(api_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    error = assert_envelope(api_client.get("/readyz"), 503, "not_ready")
    assert error["details"]["checks"]["broker"] == "unavailable"
    assert error["details"]["checks"]["database"] == "ok"


def test_readyz_names_an_unreachable_cache(api_client, settings):
    """Rate limits count in the cache: a web node without it answers 503 to those requests."""
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}  # nothing listens on port 1
    error = assert_envelope(api_client.get("/readyz"), 503, "not_ready")
    assert error["details"]["checks"] == {"database": "ok", "broker": "ok", "cache": "unavailable", "media": "ok"}
    assert error["message"] == "Not ready: cache unavailable."


@pytest.mark.timeout(30)
def test_readyz_answers_when_redis_accepts_but_never_replies(api_client, settings):
    """Without socket timeouts the cache read would wait as long as TCP keeps the socket open."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, accepts into its backlog, never answers
        settings.CACHES = {"default": redis_cache(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", 1)}
        error = assert_envelope(api_client.get("/readyz"), 503, "not_ready")
    assert error["details"]["checks"]["cache"] == "unavailable"


def test_openapi_schema_describes_every_endpoint(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for expected in [
        "/api/images/",
        "/api/images/{id}/",
        "/api/images/{id}/file/",
        "/api/images/{id}/thumbnail/",
        "/api/images/bulk-flags/",
        "/api/images/rebuild-thumbnails/",
        "/api/albums/",
        "/api/albums/{id}/",
        "/api/albums/{id}/images/",
        "/api/albums/{id}/images/remove/",
        "/api/albums/{id}/reorder/",
        "/api/jobs/thumbnails/",
        "/api/jobs/thumbnails/{id}/cancel/",
        "/api/images/{image_pk}/labels/",
        "/api/images/{image_pk}/labels/{id}/",
        "/api/images/{image_pk}/label/",
        "/api/albums/{album_pk}/label/",
        "/api/albums/{album_pk}/labeling/analytics/",
        "/api/labeling/runs/",
        "/api/labeling/runs/{id}/cancel/",
        "/api/labeling/runs/{id}/retry/",
        "/api/labels/stats/",
        "/api/labels/top-tags/",
        "/api/labels/distribution/",
    ]:
        assert expected in paths, expected


def test_api_docs_page_works_offline(api_client):
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "cdn.jsdelivr" not in html


def test_schema_generation_has_no_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")
