"""Manual labels at /api/images/{id}/labels/: admins write; reads follow the image's visibility."""

import pytest

from labeling.models import Label, LabelSource, LabelType
from tests.assertions import assert_envelope
from tests.factories import make_image

pytestmark = pytest.mark.django_db


def url(image, label=None) -> str:
    return f"/api/images/{image.pk}/labels/" + (f"{label.pk}/" if label else "")


def test_admin_adds_a_manual_label(admin_client_api, admin_user):
    image = make_image()
    response = admin_client_api.post(url(image), {"text": "  Golden   hour  ", "confidence": 0.9})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["text"] == "Golden hour" and body["label_type"] == "manual" and body["source"] == "manual"
    assert body["created_by"] == admin_user.username and body["image"] == image.pk
    label = Label.objects.get()
    assert label.created_by == admin_user and label.confidence == 0.9


def test_manual_tag_is_normalised_and_caption_allowed(admin_client_api):
    image = make_image()
    assert admin_client_api.post(url(image), {"text": "Red  Hair", "label_type": "tag"}).json()["text"] == "red hair"
    assert admin_client_api.post(url(image), {"text": "A portrait.", "label_type": "caption"}).status_code == 201


def test_the_same_label_twice_is_a_409_and_stores_nothing(admin_client_api):
    image = make_image()
    first = admin_client_api.post(url(image), {"text": "red hair", "label_type": "tag"}).json()
    error = assert_envelope(
        admin_client_api.post(url(image), {"text": "RED hair", "label_type": "tag"}), 409, "duplicate_label"
    )
    assert error["details"]["label_id"] == first["id"] and "already has" in error["message"]
    assert Label.objects.count() == 1


@pytest.mark.parametrize(
    "payload, code, field",
    [
        ({}, "validation_error", "text"),
        ({"text": "   "}, "validation_error", "text"),
        ({"text": "x" * 1001}, "validation_error", "text"),
        ({"text": "x", "label_type": "alt_text"}, "validation_error", "label_type"),
        ({"text": "x", "label_type": "nonsense"}, "validation_error", "label_type"),
        ({"text": "x", "confidence": 1.5}, "validation_error", "confidence"),
        ({"text": "x", "source": "claude"}, "validation_error", "source"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_stored(admin_client_api, payload, code, field):
    image = make_image()
    error = assert_envelope(admin_client_api.post(url(image), payload), 400, code)
    assert field in error["details"]["fields"]
    assert not Label.objects.exists()


def test_too_long_tag_is_refused(admin_client_api):
    image = make_image()
    error = assert_envelope(
        admin_client_api.post(url(image), {"text": "t" * 101, "label_type": "tag"}), 400, "invalid_label"
    )
    assert "at most 100" in error["message"]
    assert not Label.objects.exists()


def test_edit_of_a_machine_label_makes_it_a_persons(admin_client_api, admin_user):
    image = make_image()
    label = Label.objects.create(
        image=image, text="lake", label_type=LabelType.TAG, source=LabelSource.CLAUDE, source_model="m"
    )
    response = admin_client_api.patch(url(image, label), {"text": "mountain lake"})
    assert response.status_code == 200, response.content
    label.refresh_from_db()
    assert (label.text, label.source, label.source_model, label.created_by) == (
        "mountain lake",
        "manual",
        "",
        admin_user,
    )


def test_edit_into_a_duplicate_is_a_409_and_changes_nothing(admin_client_api):
    image = make_image()
    Label.objects.create(image=image, text="lake", label_type=LabelType.TAG)
    other = Label.objects.create(image=image, text="sea", label_type=LabelType.TAG)
    assert_envelope(admin_client_api.patch(url(image, other), {"text": "lake"}), 409, "duplicate_label")
    other.refresh_from_db()
    assert other.text == "sea"


def test_admin_deletes_a_label(admin_client_api):
    image = make_image()
    label = Label.objects.create(image=image, text="lake", label_type=LabelType.TAG)
    assert admin_client_api.delete(url(image, label)).status_code == 204
    assert not Label.objects.exists()


def test_a_label_of_another_image_is_not_found(admin_client_api):
    image, other = make_image(), make_image()
    label = Label.objects.create(image=other, text="lake", label_type=LabelType.TAG)
    assert_envelope(admin_client_api.get(url(image, label)), 404)
    assert_envelope(admin_client_api.delete(url(image, label)), 404)
    assert Label.objects.filter(pk=label.pk).exists()


def test_reads_follow_the_images_visibility(api_client, user_client_api, admin_client_api):
    public, nsfw, private = make_image(), make_image(is_nsfw=True), make_image(is_public=False)
    for image in (public, nsfw, private):
        Label.objects.create(image=image, text="lake", label_type=LabelType.TAG, created_by=None)
    listed = api_client.get(url(public))
    assert listed.status_code == 200 and [row["text"] for row in listed.json()["results"]] == ["lake"]
    for client in (api_client, user_client_api):
        for hidden in (nsfw, private):
            assert_envelope(client.get(url(hidden)), 404)
    assert admin_client_api.get(url(nsfw)).status_code == 200


def test_non_admins_cannot_write(api_client, user_client_api):
    image = make_image()
    label = Label.objects.create(image=image, text="lake", label_type=LabelType.TAG)
    assert_envelope(api_client.post(url(image), {"text": "x"}), 401)
    assert_envelope(user_client_api.post(url(image), {"text": "x"}), 403)
    assert_envelope(user_client_api.patch(url(image, label), {"text": "x"}), 403)
    assert_envelope(user_client_api.delete(url(image, label)), 403)
    assert list(Label.objects.values_list("text", flat=True)) == ["lake"]


def test_public_readers_do_not_see_who_wrote_a_label(api_client, admin_user):
    image = make_image()
    Label.objects.create(image=image, text="lake", label_type=LabelType.TAG, created_by=admin_user)
    assert api_client.get(url(image)).json()["results"][0]["created_by"] is None
