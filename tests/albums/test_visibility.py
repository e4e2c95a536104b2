"""Anonymous and non-admin users see only public, non-NSFW images — everywhere."""

import pytest

from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, make_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(db):
    album = AlbumFactory(is_public=True)
    images = {
        "public": make_image(album=album),
        "private": make_image(album=album, is_public=False),
        "nsfw": make_image(album=album, is_nsfw=True),
        "private_nsfw": make_image(album=album, is_public=False, is_nsfw=True),
    }
    return album, images


def _ids(response):
    return {item["id"] for item in response.json()["results"]}


@pytest.mark.parametrize("who", ["api_client", "user_client_api"])
def test_list_shows_only_public_safe_images(request, mixed, who):
    client = request.getfixturevalue(who)
    _, images = mixed
    response = client.get("/api/images/")
    assert response.status_code == 200
    assert _ids(response) == {images["public"].pk}
    assert response.json()["count"] == 1


def test_admin_sees_all_and_filters_nsfw(admin_client_api, mixed):
    _, images = mixed
    assert _ids(admin_client_api.get("/api/images/")) == {i.pk for i in images.values()}
    assert _ids(admin_client_api.get("/api/images/?is_nsfw=true")) == {images["nsfw"].pk, images["private_nsfw"].pk}
    assert _ids(admin_client_api.get("/api/images/?is_nsfw=false&is_public=true")) == {images["public"].pk}


def test_non_admin_cannot_unhide_with_filters(user_client_api, mixed):
    _, images = mixed
    assert _ids(user_client_api.get("/api/images/?is_nsfw=true")) == set()
    assert _ids(user_client_api.get("/api/images/?is_public=false")) == set()


@pytest.mark.parametrize("kind", ["private", "nsfw", "private_nsfw"])
@pytest.mark.parametrize("suffix", ["", "file", "thumbnail"])
def test_hidden_image_is_404_for_non_admins(api_client, user_client_api, mixed, kind, suffix):
    _, images = mixed
    url = f"/api/images/{images[kind].pk}/{suffix}"
    assert_envelope(api_client.get(url), 404, "not_found")
    assert_envelope(user_client_api.get(url), 404, "not_found")


@pytest.mark.parametrize("suffix", ["", "file", "thumbnail"])
def test_admin_reaches_hidden_images(admin_client_api, mixed, suffix):
    _, images = mixed
    assert admin_client_api.get(f"/api/images/{images['private_nsfw'].pk}/{suffix}").status_code == 200


def test_file_and_thumbnail_stream_bytes_with_cache_headers(api_client, admin_client_api, mixed, settings):
    settings.IMAGINEER_SHARED_CACHE_SECONDS = 120
    _, images = mixed
    public = api_client.get(f"/api/images/{images['public'].pk}/file")
    assert public["Content-Type"] == "image/png"
    assert b"".join(public.streaming_content).startswith(b"\x89PNG")
    # Shared caches keep a public file minutes, not the browser's day: it may be made private.
    assert public["Cache-Control"] == "public, max-age=86400, s-maxage=120"
    thumb = api_client.get(f"/api/images/{images['public'].pk}/thumbnail")
    assert thumb["Content-Type"] == "image/webp"
    assert b"".join(thumb.streaming_content)[8:12] == b"WEBP"
    assert thumb["Cache-Control"] == public["Cache-Control"]
    hidden = admin_client_api.get(f"/api/images/{images['private'].pk}/file")
    assert hidden["Cache-Control"] == "private, no-store"


def test_album_count_and_pages_hide_hidden_images(api_client, admin_client_api, mixed):
    album, images = mixed
    listed = api_client.get("/api/albums/").json()["results"]
    assert [a["image_count"] for a in listed if a["id"] == album.pk] == [1]
    detail = api_client.get(f"/api/albums/{album.pk}/").json()
    assert detail["image_count"] == 1
    assert [i["id"] for i in detail["images"]["results"]] == [images["public"].pk]
    assert _ids(api_client.get(f"/api/albums/{album.pk}/images/")) == {images["public"].pk}
    assert admin_client_api.get(f"/api/albums/{album.pk}/").json()["image_count"] == 4


def test_private_album_is_404_for_non_admins(api_client, user_client_api, admin_client_api):
    album = AlbumFactory(is_public=False)
    assert_envelope(api_client.get(f"/api/albums/{album.pk}/"), 404, "not_found")
    assert_envelope(user_client_api.get(f"/api/albums/{album.pk}/images/"), 404, "not_found")
    public = AlbumFactory(is_public=True)
    listed = {a["id"] for a in api_client.get("/api/albums/").json()["results"]}
    assert public.pk in listed and album.pk not in listed
    assert admin_client_api.get(f"/api/albums/{album.pk}/").status_code == 200


def test_album_filter_on_images_respects_visibility(api_client, mixed):
    album, images = mixed
    assert _ids(api_client.get(f"/api/images/?album={album.pk}")) == {images["public"].pk}


def test_pagination_is_capped(admin_client_api, settings):
    for _ in range(3):
        make_image()
    page = admin_client_api.get("/api/images/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    capped = admin_client_api.get("/api/images/?page_size=100000").json()
    assert len(capped["results"]) == 3
    assert_envelope(admin_client_api.get("/api/images/?page=99"), 404, "not_found")


def test_image_album_filter_never_shows_a_private_albums_contents(api_client, admin_client_api):
    private = AlbumFactory(is_public=False)
    make_image(album=private)
    assert api_client.get(f"/api/images/?album={private.pk}").json()["count"] == 0
    assert admin_client_api.get(f"/api/images/?album={private.pk}").json()["count"] == 1


def test_owner_sees_own_private_image_but_never_nsfw(user_client_api, plain_user):
    private = make_image(is_public=False, user=plain_user)
    nsfw = make_image(is_nsfw=True, user=plain_user)
    assert user_client_api.get(f"/api/images/{private.pk}/").status_code == 200
    assert_envelope(user_client_api.get(f"/api/images/{nsfw.pk}/"), 404)
