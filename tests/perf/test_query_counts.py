"""No N+1: the queries a read costs do not grow with the data behind it.

Each endpoint the load benchmark drives (bench/load_api.py) is read with a small database and
pages of 2 rows, then with a ten-times larger database and pages of 20 rows: the number of SQL
queries must be the same. A query per row would add 18; a query that grows with the table would
show as well.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from albums.models import Album
from generation.models import DiffusionModel, GenerationJob, ModelSource
from labeling.models import Label, LabelType
from tests.factories import AlbumFactory, UserFactory, make_image
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return len(captured.captured_queries)


@pytest.fixture
def world():
    """Grows the database: `grow(n)` adds n images with labels, album links, jobs and runs."""
    user = UserFactory()
    album = AlbumFactory(is_public=True)
    model = DiffusionModel.objects.create(name="q", source_type=ModelSource.DIFFUSERS_DIR, source="x", is_default=True)
    state = {"images": [], "jobs": [], "runs": []}

    def grow(count: int):
        for number in range(count):
            image = make_image(album=album, prompt=f"prompt {number}")
            Label.objects.create(image=image, text=f"tag {number}", label_type=LabelType.TAG)
            job = GenerationJob.objects.create(
                prompt="p",
                model=model,
                scheduler="euler",
                steps=1,
                guidance_scale=1,
                width=64,
                height=64,
                seed=1,
                created_by=user,
            )
            job.images.add(image)
            run = TrainingRun.objects.create(name=f"run {number}", model=model)
            run.albums.add(album)
            state["images"].append(image)
            state["jobs"].append(job)
            state["runs"].append(run)
        return state

    return user, album, grow


def endpoint_urls(state, album: Album, page_size: int) -> dict[str, str]:
    image, job, run = state["images"][0], state["jobs"][0], state["runs"][0]
    return {
        "image list": f"/api/images/?page_size={page_size}",
        "image detail": f"/api/images/{image.pk}/",
        "thumbnail": f"/api/images/{image.pk}/thumbnail",
        "file": f"/api/images/{image.pk}/file",
        "album detail": f"/api/albums/{album.pk}/",
        "album images": f"/api/albums/{album.pk}/images/?page_size={page_size}",
        "generation job list": f"/api/generation/jobs/?page_size={page_size}",
        "generation job status": f"/api/generation/jobs/{job.pk}/",
        "training run list": f"/api/training/runs/?page_size={page_size}",
        "training run status": f"/api/training/runs/{run.pk}/",
    }


@pytest.mark.parametrize("role", ["anonymous", "owner", "admin"])
def test_reads_cost_the_same_queries_at_ten_times_the_data(world, admin_user, role):
    user, album, grow = world
    client = APIClient()
    if role != "anonymous":
        who = user if role == "owner" else admin_user
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=who).key}")
    state = grow(20)

    def reads(page_size: int) -> dict[str, str]:
        urls = endpoint_urls(state, album, page_size)
        if role == "anonymous":  # job lists and statuses are for signed-in users
            return {name: url for name, url in urls.items() if "generation job" not in name}
        return urls

    for url in reads(2).values():
        client.get(url)  # thumbnails built on first read, caches warm: the steady state is what counts
    small = {name: queries_for(client, url) for name, url in reads(2).items()}
    grow(200)
    large = {name: queries_for(client, url) for name, url in reads(20).items()}
    assert large == small
