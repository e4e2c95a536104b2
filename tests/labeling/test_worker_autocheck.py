"""The NSFW autocheck on a real Celery worker consuming the `labeling` queue.

Images stored to be public (an admin's upload, a user's image, a generated one) are hidden from
everyone but their owner and admins until the worker's check passed; a check whose labeler cannot
run fails and keeps its image hidden, and the admin's "Check NSFW now" makes it pass.
"""

import io

import pytest
import yaml
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from albums.models import Image, NsfwCheck
from albums.services import store_image
from generation import services as generation_services
from generation.models import GenerationJob
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from labeling.models import NsfwCheckJob
from tests.factories import scene_png
from tests.processes import celery_worker, wait_for_final_job

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def anonymous_sees(image: Image) -> bool:
    client = APIClient()
    answers = [client.get(f"/api/images/{image.pk}/{suffix}").status_code for suffix in ("", "file", "thumbnail")]
    # Filtered to this image: the list's answer does not depend on what else the database holds.
    listing = client.get("/api/images/", {"sha256": image.sha256}).json()["results"]
    listed = image.pk in {item["id"] for item in listing}
    assert len({*answers, listed and 200 or 404}) == 1, (answers, listed)  # every path answers alike
    return listed


def checks_of(image: Image) -> list[NsfwCheckJob]:
    return list(NsfwCheckJob.objects.filter(images=image).order_by("pk"))


def test_checks_run_on_a_worker_and_a_failed_one_is_retried_from_the_admin(
    settings, tiny_model, admin_user, plain_user, admin_browser, runtime_config_file, media_root
):
    """The worker starts first: it purges its queue at start, and a message sent before would be lost.

    That images wait hidden until their check ran, and that a generation job does not wait for
    it, is shown step by step in test_autocheck.py (the check run in this process).
    """
    settings.IMAGINEER_NSFW_AUTOCHECK = True
    admin_api = APIClient()
    admin_api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    with celery_worker(queues="labeling", media_root=media_root, extra_env={"ANTHROPIC_API_KEY": ""}) as worker:
        upload = admin_api.post("/api/images/", {"file": io.BytesIO(scene_png())}, format="multipart").json()
        users, _ = store_image(io.BytesIO(scene_png((240, 180))), user=plain_user, is_public=True)
        generation = generation_services.start_generation_job(
            user=plain_user, model=tiny_model, prompt="a kite", steps=2
        )
        jobs.run_job(GenerationJob, generation.pk, generation_services.run_generation_job)
        generation.refresh_from_db()
        assert generation.status == JobStatus.SUCCEEDED
        images = [Image.objects.get(pk=upload["id"]), users, *generation.images.all()]
        assert upload["nsfw_check"] == users.nsfw_check == "pending" and len(images) == 3
        for image in images:
            [job] = checks_of(image)  # one check each, as each was stored on its own
            assert wait_for_final_job(job, 120, worker).status == JobStatus.SUCCEEDED, job.error_message
            image.refresh_from_db()
            assert (image.nsfw_check, image.nsfw_rating, image.is_nsfw) == (NsfwCheck.PASSED, "SAFE", False)
            assert anonymous_sees(image)

        # A labeler that cannot run on the worker (Claude without a key): the check fails, the image stays hidden.
        runtime_config_file.write_text(yaml.safe_dump({"labeling": {"autocheck_labeler": "claude"}}))
        failing, _ = store_image(io.BytesIO(scene_png((200, 150))), is_public=True)
        [job] = checks_of(failing)
        assert wait_for_final_job(job, 120, worker).status == JobStatus.FAILED
        failing.refresh_from_db()
        assert failing.nsfw_check == NsfwCheck.FAILED and "ANTHROPIC_API_KEY" in failing.nsfw_check_error
        assert not anonymous_sees(failing)

        # The admin retries with the local detector: it passes and the image is everyone's.
        runtime_config_file.write_text(yaml.safe_dump({"labeling": {"autocheck_labeler": "nudenet"}}))
        response = admin_browser.post(
            "/admin/albums/image/", {"action": "check_nsfw_now", "_selected_action": [failing.pk]}, follow=True
        )
        assert response.status_code == 200
        retry = checks_of(failing)[-1]
        assert retry.pk != job.pk and retry.labeler == "nudenet"
        assert wait_for_final_job(retry, 120, worker).status == JobStatus.SUCCEEDED
    failing.refresh_from_db()
    assert (failing.nsfw_check, failing.nsfw_check_error) == (NsfwCheck.PASSED, "")
    assert anonymous_sees(failing)
    assert "labeling.tasks.run_nsfw_check" in worker.text and str(media_root) not in worker.text
