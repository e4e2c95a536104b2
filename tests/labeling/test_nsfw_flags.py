"""is_nsfw follows machine ratings unless an admin set it; every change records who/what and when."""

import io

import pytest

from albums import services as album_services
from albums.models import NsfwFlagChange, NsfwFlagSource
from labeling import services
from labeling.labelers import LabelResult
from tests.factories import image_bytes, make_image

pytestmark = pytest.mark.django_db


def rate(image, rating: str) -> None:
    services.store_labeler_result(image.pk, LabelResult(nsfw_rating=rating), labeler="nudenet", source_model="m")
    image.refresh_from_db()


@pytest.mark.parametrize("rating, nsfw", [("SAFE", False), ("SUGGESTIVE", False), ("ADULT", True), ("EXPLICIT", True)])
def test_is_nsfw_follows_the_rating(rating, nsfw):
    image = make_image()
    rate(image, rating)
    assert image.is_nsfw is nsfw and image.nsfw_rating == rating


def test_a_later_safe_rating_clears_a_machine_flag_and_both_changes_are_recorded():
    image = make_image()
    rate(image, "EXPLICIT")
    rate(image, "SAFE")
    assert image.is_nsfw is False
    history = list(image.nsfw_changes.order_by("id").values_list("is_nsfw", "source", "rating"))
    assert history == [(True, "machine", "EXPLICIT"), (False, "machine", "SAFE")]


def test_an_unchanged_value_records_nothing_but_the_machine_now_decides():
    image = make_image()
    assert image.nsfw_flag_source == NsfwFlagSource.UNSET
    rate(image, "SAFE")
    rate(image, "SUGGESTIVE")
    assert not image.nsfw_changes.exists()
    assert image.nsfw_flag_source == NsfwFlagSource.MACHINE and image.nsfw_rating == "SUGGESTIVE"


def test_manual_flags_win_over_machine_ratings(admin_user):
    image = make_image()
    album_services.set_image_flags([image.pk], is_nsfw=True, user=admin_user)
    rate(image, "SAFE")
    assert image.is_nsfw is True and image.nsfw_flag_source == NsfwFlagSource.MANUAL and image.nsfw_rating == "SAFE"
    change = image.nsfw_changes.get()
    assert (change.is_nsfw, change.source, change.changed_by) == (True, "manual", admin_user)


def test_releasing_a_manual_flag_applies_the_latest_rating(admin_user):
    image = make_image()
    album_services.set_image_flags([image.pk], is_nsfw=True, user=admin_user)
    rate(image, "SAFE")
    assert album_services.release_manual_nsfw_flags([image.pk]) == 1
    image.refresh_from_db()
    assert image.is_nsfw is False and image.nsfw_flag_source == NsfwFlagSource.MACHINE


def test_patch_is_nsfw_is_a_recorded_manual_flag(admin_client_api, admin_user):
    image = make_image()
    response = admin_client_api.patch(f"/api/images/{image.pk}/", {"is_nsfw": True, "prompt": "p"})
    assert response.status_code == 200, response.content
    assert response.json()["nsfw_flag_source"] == "manual" and response.json()["prompt"] == "p"
    change = NsfwFlagChange.objects.get(image=image)
    assert change.changed_by == admin_user and change.source == "manual" and change.is_nsfw is True


def test_bulk_flags_record_each_change(admin_client_api, admin_user):
    a, b = make_image(), make_image()
    rate(b, "ADULT")  # NSFW by a machine's rating
    b.nsfw_changes.all().delete()
    response = admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [a.pk, b.pk], "is_nsfw": True})
    assert response.json() == {"updated": 2}
    # a changed; b was NSFW already, but by a machine: now it is an admin's decision. Both recorded.
    assert set(NsfwFlagChange.objects.values_list("image_id", "changed_by")) == {
        (a.pk, admin_user.pk),
        (b.pk, admin_user.pk),
    }
    admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [a.pk, b.pk], "is_nsfw": True})
    assert NsfwFlagChange.objects.count() == 2  # the same decision again is no change


def test_upload_flagged_nsfw_is_a_manual_flag(admin_client_api, admin_user):
    upload = io.BytesIO(image_bytes())
    upload.name = "x.png"
    response = admin_client_api.post("/api/images/", {"file": upload, "is_nsfw": True}, format="multipart")
    assert response.status_code == 201, response.content
    change = NsfwFlagChange.objects.get(image_id=response.json()["id"])
    assert change.source == "manual" and change.changed_by == admin_user


def test_a_failed_result_store_changes_nothing(monkeypatch):
    image = make_image()

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(album_services, "apply_machine_nsfw_rating", boom)
    with pytest.raises(RuntimeError):
        services.store_labeler_result(
            image.pk, LabelResult(nsfw_rating="ADULT", caption="c", tags=("t",)), labeler="claude", source_model="m"
        )
    image.refresh_from_db()
    assert not image.labels.exists() and not image.labeler_results.exists() and image.nsfw_rating == ""


def test_one_labelers_safe_never_clears_anothers_nsfw_rating():
    image = make_image()
    services.store_labeler_result(image.pk, LabelResult(nsfw_rating="EXPLICIT"), labeler="claude", source_model="m")
    services.store_labeler_result(image.pk, LabelResult(nsfw_rating="SAFE"), labeler="nudenet", source_model="n")
    image.refresh_from_db()
    assert image.is_nsfw is True and image.nsfw_rating == "EXPLICIT"
    # The same labeler changing its mind does count.
    services.store_labeler_result(image.pk, LabelResult(nsfw_rating="SUGGESTIVE"), labeler="claude", source_model="m")
    image.refresh_from_db()
    assert image.is_nsfw is False and image.nsfw_rating == "SUGGESTIVE"


def test_flags_set_before_labelers_existed_become_manual():
    import importlib

    from django.apps import apps

    from albums.models import Image

    migration = importlib.import_module("albums.migrations.0005_image_nsfw_flag_source_image_nsfw_rating_and_more")
    old_flag, safe = make_image(), make_image()
    Image.objects.filter(pk=old_flag.pk).update(is_nsfw=True, nsfw_flag_source="")
    migration.flags_set_before_are_manual(apps, None)
    old_flag.refresh_from_db()
    safe.refresh_from_db()
    assert old_flag.nsfw_flag_source == NsfwFlagSource.MANUAL and safe.nsfw_flag_source == NsfwFlagSource.UNSET
    rate(old_flag, "SAFE")  # the first machine rating no longer makes it public
    assert old_flag.is_nsfw is True


def test_moderation_fields_are_for_admins_only(api_client, admin_client_api, admin_user):
    image = make_image()
    rate(image, "ADULT")
    album_services.set_image_flags([image.pk], is_nsfw=False, user=admin_user)  # an admin judged it safe
    public = api_client.get(f"/api/images/{image.pk}/").json()
    assert "nsfw_rating" not in public and "nsfw_flag_source" not in public and public["is_nsfw"] is False
    assert "nsfw_rating" not in api_client.get("/api/images/").json()["results"][0]
    admin = admin_client_api.get(f"/api/images/{image.pk}/").json()
    assert admin["nsfw_rating"] == "ADULT" and admin["nsfw_flag_source"] == "manual"
