"""Album CRUD, membership and order; image flags. Writes are admin-only."""

import pytest
from django.core.files.storage import default_storage

from albums.models import Album, AlbumImage, Image
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, make_image

pytestmark = pytest.mark.django_db


def order(album) -> list[int]:
    return list(album.album_images.order_by("sort_order", "id").values_list("image_id", flat=True))


def test_admin_creates_album_with_generated_slug(admin_client_api, admin_user):
    response = admin_client_api.post("/api/albums/", {"name": "Tarot Deck", "description": "cards"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "tarot-deck"
    assert body["image_count"] == 0
    assert Album.objects.get(pk=body["id"]).created_by == admin_user
    again = admin_client_api.post("/api/albums/", {"name": "Tarot Deck"}).json()
    assert again["slug"] == "tarot-deck-2"


def test_duplicate_slug_is_refused(admin_client_api):
    AlbumFactory(slug="zodiac")
    error = assert_envelope(
        admin_client_api.post("/api/albums/", {"name": "Z", "slug": "zodiac"}), 400, "validation_error"
    )
    assert "slug" in error["details"]["fields"]
    assert Album.objects.filter(slug="zodiac").count() == 1


def test_album_payload_errors(admin_client_api):
    assert_envelope(admin_client_api.post("/api/albums/", {"description": "no name"}), 400, "validation_error")
    error = assert_envelope(
        admin_client_api.post("/api/albums/", {"name": "A", "owner": "me"}), 400, "validation_error"
    )
    assert error["details"]["fields"] == {"owner": ["Unknown field."]}
    error = assert_envelope(admin_client_api.post("/api/albums/", {"name": "A", "is_public": "perhaps"}), 400)
    assert "is_public" in error["details"]["fields"]
    error = assert_envelope(admin_client_api.post("/api/albums/", {"name": "A", "source_type": "scrape"}), 400)
    assert error["details"]["fields"] == {"source_type": ["This field is read-only."]}
    assert Album.objects.count() == 0


def test_malformed_json_is_refused(admin_client_api):
    response = admin_client_api.generic("POST", "/api/albums/", '{"name": ', content_type="application/json")
    assert_envelope(response, 400, "malformed_request")
    assert Album.objects.count() == 0


def test_non_admins_cannot_write_albums(api_client, user_client_api):
    album = AlbumFactory()
    assert_envelope(api_client.post("/api/albums/", {"name": "x"}), 401)
    assert_envelope(user_client_api.post("/api/albums/", {"name": "x"}), 403)
    assert_envelope(user_client_api.patch(f"/api/albums/{album.pk}/", {"name": "y"}), 403)
    assert_envelope(user_client_api.delete(f"/api/albums/{album.pk}/"), 403)
    album.refresh_from_db()
    assert album.name != "y"


def test_other_users_private_objects_are_404_not_403(user_client_api):
    album = AlbumFactory(is_public=False)
    image = make_image(is_public=False)
    assert_envelope(user_client_api.patch(f"/api/albums/{album.pk}/", {"name": "y"}), 404)
    assert_envelope(user_client_api.delete(f"/api/images/{image.pk}/"), 404)
    assert_envelope(user_client_api.post(f"/api/albums/{album.pk}/images/", {"image_ids": [image.pk]}), 404)
    assert Image.objects.filter(pk=image.pk).exists()


def test_update_and_delete_album_keeps_images(admin_client_api):
    album = AlbumFactory()
    image = make_image(album=album)
    response = admin_client_api.patch(f"/api/albums/{album.pk}/", {"name": "Renamed", "is_public": False})
    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    assert admin_client_api.delete(f"/api/albums/{album.pk}/").status_code == 204
    assert not Album.objects.filter(pk=album.pk).exists()
    assert Image.objects.filter(pk=image.pk).exists()


def test_add_remove_images(admin_client_api):
    album = AlbumFactory()
    a, b, c = make_image(), make_image(), make_image()
    response = admin_client_api.post(f"/api/albums/{album.pk}/images/", {"image_ids": [b.pk, a.pk, b.pk]})
    assert response.json() == {"added": 2}
    assert order(album) == [b.pk, a.pk]
    assert admin_client_api.post(f"/api/albums/{album.pk}/images/", {"image_ids": [a.pk, c.pk]}).json() == {"added": 1}
    assert order(album) == [b.pk, a.pk, c.pk]
    response = admin_client_api.post(f"/api/albums/{album.pk}/images/remove/", {"image_ids": [a.pk]})
    assert response.json() == {"removed": 1}
    assert order(album) == [b.pk, c.pk]
    assert Image.objects.filter(pk=a.pk).exists()


def test_add_unknown_images_changes_nothing(admin_client_api):
    album = AlbumFactory()
    a = make_image(album=album)
    b = make_image()
    error = assert_envelope(
        admin_client_api.post(f"/api/albums/{album.pk}/images/", {"image_ids": [b.pk, 987654]}), 400, "unknown_images"
    )
    assert error["details"]["missing_ids"] == [987654]
    assert order(album) == [a.pk]


def test_image_ids_must_be_a_non_empty_list_of_ints(admin_client_api):
    album = AlbumFactory()
    for bad in ({"image_ids": []}, {"image_ids": "1,2"}, {"image_ids": ["x"]}, {}, {"image_ids": [1], "extra": 1}):
        assert_envelope(admin_client_api.post(f"/api/albums/{album.pk}/images/", bad), 400, "validation_error")


def test_reorder_whole_album_and_subset(admin_client_api):
    album = AlbumFactory()
    a, b, c, d = (make_image(album=album) for _ in range(4))
    assert (
        admin_client_api.post(f"/api/albums/{album.pk}/reorder/", {"image_ids": [d.pk, c.pk, b.pk, a.pk]}).status_code
        == 200
    )
    assert order(album) == [d.pk, c.pk, b.pk, a.pk]
    # A subset swaps among the positions those images hold; the others stay put.
    assert admin_client_api.post(f"/api/albums/{album.pk}/reorder/", {"image_ids": [a.pk, c.pk]}).status_code == 200
    assert order(album) == [d.pk, a.pk, b.pk, c.pk]
    listed = admin_client_api.get(f"/api/albums/{album.pk}/images/").json()["results"]
    assert [i["id"] for i in listed] == [d.pk, a.pk, b.pk, c.pk]


def test_reorder_with_ids_not_in_album_changes_nothing(admin_client_api):
    album = AlbumFactory()
    a, b = make_image(album=album), make_image(album=album)
    outsider = make_image()
    error = assert_envelope(
        admin_client_api.post(f"/api/albums/{album.pk}/reorder/", {"image_ids": [b.pk, outsider.pk]}),
        400,
        "unknown_images",
    )
    assert error["details"]["missing_ids"] == [outsider.pk]
    assert order(album) == [a.pk, b.pk]
    assert_envelope(
        admin_client_api.post(f"/api/albums/{album.pk}/reorder/", {"image_ids": [b.pk, b.pk]}), 400, "duplicate_ids"
    )
    assert order(album) == [a.pk, b.pk]


def test_reorder_repairs_equal_sort_orders(admin_client_api):
    album = AlbumFactory()
    a, b, c = make_image(), make_image(), make_image()
    for image in (a, b, c):
        AlbumImage.objects.create(album=album, image=image, sort_order=0)
    admin_client_api.post(f"/api/albums/{album.pk}/reorder/", {"image_ids": [c.pk, a.pk]})
    assert order(album) == [c.pk, b.pk, a.pk]


def test_patch_image_flags_and_prompt(admin_client_api):
    image = make_image()
    response = admin_client_api.patch(f"/api/images/{image.pk}/", {"is_nsfw": True, "prompt": "a fox"})
    assert response.status_code == 200
    assert response.json()["is_nsfw"] is True and response.json()["prompt"] == "a fox"
    error = assert_envelope(admin_client_api.patch(f"/api/images/{image.pk}/", {"sha256": "0" * 64}), 400)
    assert "sha256" in error["details"]["fields"]
    assert_envelope(admin_client_api.patch(f"/api/images/{image.pk}/", {"is_public": "sometimes"}), 400)
    image.refresh_from_db()
    assert image.is_public is True


def test_put_is_not_allowed(admin_client_api):
    image = make_image()
    assert_envelope(admin_client_api.put(f"/api/images/{image.pk}/", {"is_nsfw": True}), 405, "method_not_allowed")


def test_bulk_flags(admin_client_api, user_client_api):
    a, b, c = make_image(), make_image(), make_image()
    response = admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [a.pk, b.pk], "is_nsfw": True})
    assert response.json() == {"updated": 2}
    assert set(Image.objects.filter(is_nsfw=True).values_list("pk", flat=True)) == {a.pk, b.pk}
    assert_envelope(admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [c.pk]}), 400, "validation_error")
    assert_envelope(
        admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [c.pk, 424242], "is_public": False}),
        400,
        "unknown_images",
    )
    assert Image.objects.get(pk=c.pk).is_public is True
    assert_envelope(user_client_api.post("/api/images/bulk-flags/", {"image_ids": [c.pk], "is_nsfw": True}), 403)


def test_delete_image_removes_files(admin_client_api, media_root, django_capture_on_commit_callbacks):
    from tests.assertions import files_under

    image = make_image()
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client_api.delete(f"/api/images/{image.pk}/").status_code == 204
    assert files_under(media_root) == []


def test_thumbnail_of_an_image_whose_file_is_gone_is_404(admin_client_api):
    image = make_image()
    default_storage.delete(image.file.name)
    default_storage.delete(image.thumbnail.name)
    assert_envelope(admin_client_api.get(f"/api/images/{image.pk}/thumbnail"), 404, "file_missing")
