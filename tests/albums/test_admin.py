"""The operator console: lists with thumbnails, filters, bulk flag actions, no filesystem paths."""

import pytest
from rest_framework.authtoken.models import Token

from albums.models import Image, ThumbnailJob
from tests.factories import AlbumFactory, make_image

pytestmark = pytest.mark.django_db


def test_image_changelist_has_thumbnails_filters_and_no_paths(admin_browser, media_root, settings):
    album = AlbumFactory(name="Zodiac")
    image = make_image(album=album, prompt="a golden ram")
    html = admin_browser.get("/admin/albums/image/").content.decode()
    assert f"/api/images/{image.pk}/thumbnail" in html
    for filter_name in ("is_nsfw", "is_public", "source", "albums"):
        assert filter_name in html
    assert str(media_root) not in html and str(settings.DATA_DIR) not in html
    assert image.file.name not in html


def test_image_search_by_prompt(admin_browser):
    fox = make_image(prompt="a red fox in snow")
    make_image(prompt="a blue whale")
    html = admin_browser.get("/admin/albums/image/?q=fox").content.decode()
    assert f"/api/images/{fox.pk}/thumbnail" in html and "blue whale" not in html


def test_image_change_page_shows_no_storage_path(admin_browser, media_root):
    image = make_image()
    html = admin_browser.get(f"/admin/albums/image/{image.pk}/change/").content.decode()
    assert f"/api/images/{image.pk}/file" in html
    assert image.file.name not in html and str(media_root) not in html


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        ("mark_nsfw", "is_nsfw", True),
        ("mark_not_nsfw", "is_nsfw", False),
        ("make_public", "is_public", True),
        ("make_private", "is_public", False),
    ],
)
def test_bulk_actions(admin_browser, action, field, value):
    images = [
        make_image(
            is_nsfw=not value if field == "is_nsfw" else False, is_public=not value if field == "is_public" else True
        )
        for _ in range(2)
    ]
    response = admin_browser.post(
        "/admin/albums/image/", {"action": action, "_selected_action": [i.pk for i in images]}, follow=True
    )
    assert response.status_code == 200
    assert all(getattr(i, field) == value for i in Image.objects.all())


def test_rebuild_thumbnails_action_queues_job(admin_browser):
    image = make_image()
    admin_browser.post("/admin/albums/image/", {"action": "rebuild_thumbnails", "_selected_action": [image.pk]})
    assert ThumbnailJob.objects.get().image_ids == [image.pk]
    assert admin_browser.get("/admin/albums/thumbnailjob/").status_code == 200


def test_album_change_page_has_ordered_inline(admin_browser):
    album = AlbumFactory()
    first, second = make_image(album=album), make_image(album=album)
    html = admin_browser.get(f"/admin/albums/album/{album.pk}/change/").content.decode()
    assert "sort_order" in html
    assert html.index(f"/api/images/{first.pk}/thumbnail") < html.index(f"/api/images/{second.pk}/thumbnail")


def test_tokens_are_visible_and_revocable_in_admin(admin_browser, admin_user):
    token = Token.objects.create(user=admin_user)
    assert admin_browser.get("/admin/authtoken/tokenproxy/").status_code == 200
    admin_browser.post(f"/admin/authtoken/tokenproxy/{admin_user.pk}/delete/", {"post": "yes"})
    assert not Token.objects.filter(pk=token.pk).exists()
