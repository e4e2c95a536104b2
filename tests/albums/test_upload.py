"""POST /api/images/ — uploads decided by content, with nothing left behind when refused."""

import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from albums.models import AlbumImage, Image
from tests.assertions import assert_envelope, files_under
from tests.factories import AlbumFactory, image_bytes, png_bomb_bytes

pytestmark = pytest.mark.django_db


def upload(client, data: bytes, name: str = "photo.png", content_type: str = "image/png", **fields):
    payload = {"file": SimpleUploadedFile(name, data, content_type=content_type), **fields}
    return client.post("/api/images/", payload, format="multipart")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_upload_accepts_each_supported_format(admin_client_api, media_root, fmt):
    data = image_bytes(fmt, size=(640, 320))
    response = upload(admin_client_api, data, name=f"x.{fmt.lower()}")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == fmt
    assert (body["width"], body["height"]) == (640, 320)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["duplicate"] is False
    assert body["source"] == "uploaded"
    image = Image.objects.get(pk=body["id"])
    assert image.file_size == len(data)
    with image.thumbnail.open("rb") as fh:
        thumb = PILImage.open(fh)
        thumb.load()
    assert thumb.format == "WEBP"
    assert max(thumb.size) == 256


def test_upload_response_and_storage_hide_paths_and_client_names(admin_client_api, media_root):
    response = upload(admin_client_api, image_bytes(), name="../../etc/x.png")
    assert response.status_code == 201
    text = response.content.decode()
    assert str(media_root) not in text
    assert "/etc" not in text and "../" not in text
    image = Image.objects.get(pk=response.json()["id"])
    assert image.original_filename == "x.png"
    assert image.file.name.startswith("images/") and "x.png" not in image.file.name
    assert all(path.startswith(("images/", "thumbnails/")) for path in files_under(media_root))


def test_same_name_different_content_never_overwrites(admin_client_api, media_root):
    first = upload(admin_client_api, image_bytes(), name="photo.png").json()
    second = upload(admin_client_api, image_bytes(), name="photo.png").json()
    assert first["id"] != second["id"]
    assert Image.objects.get(pk=first["id"]).file.name != Image.objects.get(pk=second["id"]).file.name
    assert len(files_under(media_root)) == 4  # two files, two thumbnails


def test_identical_file_is_reported_not_stored_twice(admin_client_api, media_root):
    data = image_bytes()
    first = upload(admin_client_api, data)
    files_before = files_under(media_root)
    again = upload(admin_client_api, data, name="other-name.png")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert Image.objects.count() == 1
    assert files_under(media_root) == files_before


def test_duplicate_upload_into_album_links_existing_image(admin_client_api):
    album = AlbumFactory()
    data = image_bytes()
    first = upload(admin_client_api, data).json()
    again = upload(admin_client_api, data, album=album.pk)
    assert again.status_code == 200
    assert list(album.album_images.values_list("image_id", flat=True)) == [first["id"]]


def test_upload_with_album_and_flags(admin_client_api):
    album = AlbumFactory()
    response = upload(admin_client_api, image_bytes(), album=album.pk, is_public="false", is_nsfw="true")
    assert response.status_code == 201
    body = response.json()
    assert body["is_public"] is False and body["is_nsfw"] is True
    assert AlbumImage.objects.filter(album=album, image_id=body["id"]).exists()


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _truncated_png() -> bytes:
    data = image_bytes("PNG", size=(300, 300))
    return data[: len(data) // 2]


def _svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="10" height="10"/></svg>'


def _bmp() -> bytes:
    return image_bytes("BMP")


@pytest.mark.parametrize(
    ("label", "data", "name", "code"),
    [
        ("pdf disguised as png", _pdf(), "doc.png", "unsupported_image"),
        ("truncated png", _truncated_png(), "cut.png", "corrupt_image"),
        ("30000x30000 bomb", png_bomb_bytes(), "bomb.png", "image_too_large"),
        ("zero bytes", b"", "empty.png", "empty_file"),
        ("svg", _svg(), "vector.svg", "unsupported_image"),
        ("bmp is not accepted", _bmp(), "old.bmp", "unsupported_image"),
        ("text", b"hello world", "notes.jpg", "unsupported_image"),
    ],
)
def test_refused_uploads_answer_400_and_leave_nothing(admin_client_api, media_root, label, data, name, code):
    response = upload(admin_client_api, data, name=name)
    error = assert_envelope(response, 400, code)
    assert name not in error["message"] or "/" not in error["message"]
    assert Image.objects.count() == 0
    assert files_under(media_root) == []


def test_oversize_upload_is_refused(admin_client_api, media_root, settings):
    settings.IMAGINEER_UPLOAD_MAX_BYTES = 1000
    response = upload(admin_client_api, image_bytes("PNG", size=(400, 400)) + b"\0" * 2000)
    error = assert_envelope(response, 400, "image_too_large")
    assert error["details"]["max_bytes"] == 1000
    assert Image.objects.count() == 0
    assert files_under(media_root) == []


def test_upload_without_file_field_is_a_validation_error(admin_client_api, media_root):
    response = admin_client_api.post("/api/images/", {"is_public": "true"}, format="multipart")
    error = assert_envelope(response, 400, "validation_error")
    assert "file" in error["details"]["fields"]
    assert files_under(media_root) == []


def test_upload_with_unknown_field_is_refused(admin_client_api, media_root):
    response = upload(admin_client_api, image_bytes(), colour="blue")
    error = assert_envelope(response, 400, "validation_error")
    assert error["details"]["fields"]["colour"] == ["Unknown field."]
    assert Image.objects.count() == 0 and files_under(media_root) == []


def test_upload_with_wrong_type_is_refused(admin_client_api, media_root):
    response = upload(admin_client_api, image_bytes(), is_public="maybe", album="abc")
    error = assert_envelope(response, 400, "validation_error")
    assert {"is_public", "album"} <= set(error["details"]["fields"])
    assert Image.objects.count() == 0 and files_under(media_root) == []


def test_upload_into_missing_album_is_refused(admin_client_api, media_root):
    response = upload(admin_client_api, image_bytes(), album=999999)
    assert_envelope(response, 400, "validation_error")
    assert Image.objects.count() == 0 and files_under(media_root) == []


def test_anonymous_upload_is_401(api_client, media_root):
    response = upload(api_client, image_bytes())
    assert_envelope(response, 401, "not_authenticated")
    assert files_under(media_root) == []


def test_non_admin_upload_is_403(user_client_api, media_root):
    response = upload(user_client_api, image_bytes())
    assert_envelope(response, 403, "permission_denied")
    assert files_under(media_root) == []


def test_upload_rate_limit_answers_429(admin_client_api, settings):
    settings.IMAGINEER_UPLOAD_RATE = "2/m"
    assert upload(admin_client_api, image_bytes()).status_code == 201
    assert upload(admin_client_api, image_bytes()).status_code == 201
    assert_envelope(upload(admin_client_api, image_bytes()), 429, "rate_limited")
    assert Image.objects.count() == 2


def test_decoded_content_decides_not_extension(admin_client_api):
    response = upload(admin_client_api, image_bytes("JPEG"), name="really-a-jpeg.png", content_type="image/png")
    assert response.status_code == 201
    image = Image.objects.get(pk=response.json()["id"])
    assert image.format == "JPEG" and image.file.name.endswith(".jpg")


def test_exif_orientation_applied_to_thumbnail(admin_client_api):
    img = PILImage.new("RGB", (400, 100), (10, 20, 30))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    body = upload(admin_client_api, out.getvalue(), name="r.jpg").json()
    with Image.objects.get(pk=body["id"]).thumbnail.open("rb") as fh:
        thumb = PILImage.open(fh)
        assert thumb.size[1] > thumb.size[0]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_thumbnail_is_shrunk_then_turned_upright_like_the_displayed_picture(orientation):
    """The thumbnail is made small before it is turned, and ends the same as turning the full picture."""
    from PIL import ImageOps

    from albums.image_files import render_thumbnail

    picture = PILImage.new("RGB", (800, 400), (0, 0, 0))
    for box, colour in [
        ((0, 0, 400, 200), (255, 0, 0)),
        ((400, 0, 800, 200), (0, 255, 0)),
        ((0, 200, 400, 400), (0, 0, 255)),
        ((400, 200, 800, 400), (255, 255, 0)),
    ]:
        picture.paste(colour, box)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    picture.save(out, "PNG", exif=exif)

    expected = ImageOps.exif_transpose(PILImage.open(io.BytesIO(out.getvalue())))
    expected.thumbnail((64, 64))
    thumb = PILImage.open(io.BytesIO(render_thumbnail(io.BytesIO(out.getvalue()), size=64))).convert("RGB")
    assert thumb.size == expected.size
    w, h = thumb.size
    for x, y in [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]:
        assert all(abs(a - b) < 40 for a, b in zip(thumb.getpixel((x, y)), expected.getpixel((x, y)), strict=True))
