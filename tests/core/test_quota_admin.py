"""A user's quota in the admin: the override is saved from the user's page and applies at once."""

import pytest
import yaml
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from imagineer.core.models import UserQuota
from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db

JOB = {"prompt": "p", "steps": 2, "width": 64, "height": 64, "seed": 1}


def test_an_admin_sets_a_users_quota_on_their_page_and_it_applies(
    tiny_model, admin_browser, plain_user, runtime_config_file
):
    runtime_config_file.write_text(yaml.safe_dump({"quotas": {"images_per_day": 50}}), encoding="utf-8")
    page = admin_browser.get(f"/admin/core/user/{plain_user.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "quota-0-images_per_day" in html and "quota-0-exempt" in html
    form = {
        "username": plain_user.username,
        "email": plain_user.email,
        "first_name": "",
        "last_name": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "groups": [],
        "user_permissions": [],
        "quota-TOTAL_FORMS": "1",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
        "quota-0-images_per_day": "1",
        "quota-0-concurrent_jobs": "",
        "quota-0-gpu_seconds_per_day": "",
        "quota-0-exempt": "unknown",
        "quota-0-user": str(plain_user.pk),
    }
    response = admin_browser.post(f"/admin/core/user/{plain_user.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    quota = UserQuota.objects.get(user=plain_user)
    assert (quota.images_per_day, quota.concurrent_jobs, quota.exempt) == (1, None, None)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=plain_user).key}")
    assert client.post("/api/generation/jobs/", JOB).status_code == 202
    error = assert_envelope(client.post("/api/generation/jobs/", JOB), 429, "quota_exceeded")
    assert error["details"]["limit"] == 1
    # The page shows what the user used against it.
    html = admin_browser.get(f"/admin/core/user/{plain_user.pk}/change/").content.decode()
    assert "1 images today (of 1)" in html and "1 jobs queued or running (of 4)" in html
