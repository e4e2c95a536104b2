"""A labeling run on a real Celery worker process consuming the `labeling` queue."""

import io
import time

import pytest

from albums.services import store_image
from imagineer.core.models import JobStatus
from labeling import services
from labeling.models import LabelerResult
from tests.factories import AlbumFactory, scene_png
from tests.processes import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_labeling_run_on_a_real_worker(media_root):
    album = AlbumFactory()
    images = [store_image(io.BytesIO(scene_png((200 + i, 150))), album=album)[0] for i in range(2)]
    with celery_worker(queues="labeling", media_root=media_root) as worker:
        run = services.start_labeling_run(album=album, labeler="nudenet")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_final:
                break
            time.sleep(0.25)
        assert run.status == JobStatus.SUCCEEDED, (run.status, run.error_message, worker.text[-3000:])
    assert run.succeeded_count == 2 and run.worker and run.attempts == 1
    assert set(LabelerResult.objects.values_list("image_id", "nsfw_rating")) == {(i.pk, "SAFE") for i in images}
    assert "labeling.tasks.run_labeling_run" in worker.text
