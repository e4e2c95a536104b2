"""Every 202 names the job it started: `Location` (absolute) and the body's `url`, which answer the job.

Jobs started here are rows only: a test's transaction is never committed, so their on_commit sends
never reach a queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import yaml
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from albums.models import ThumbnailJob
from generation.models import DiffusionModel, GenerationJob, ModelFamily, ModelSource
from imagineer.core.models import JobStatus
from imagineer.core.serializers import JobSerializer
from imagineer.ops.models import PurgeRun, RetentionPolicy, RetentionTarget
from imagineer.ops.services.disk import snapshots
from labeling.models import Label, LabelerName, LabelingRun, LabelType
from legacy.models import ImportRun
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, make_image
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class World:
    model: DiffusionModel
    album: object
    image: object
    template: object
    generation_job: GenerationJob
    labeling_run: LabelingRun
    training_run: TrainingRun


@pytest.fixture
def world(admin_user, plain_user, runtime_config_file) -> World:
    """One captioned image in an album, a set template, and a failed run of each retryable kind."""
    runtime_config_file.write_text(yaml.safe_dump({"training": {"min_captioned_images": 1}}), encoding="utf-8")
    model = DiffusionModel.objects.create(
        name="follow-model", source_type=ModelSource.HUB, source="example/follow", family=ModelFamily.SD1
    )
    DiffusionModel.objects.filter(pk=model.pk).update(is_default=True)
    album = AlbumFactory(name="Followed album")
    image = make_image(album=album, user=admin_user)
    Label.objects.create(image=image, text="a lighthouse at dusk", label_type=LabelType.CAPTION)
    template = AlbumFactory(
        name="Deck", is_set_template=True, template_items=[{"card": "Ace"}], prompt_template="{card}"
    )
    job = GenerationJob.objects.create(
        created_by=plain_user,
        prompt="a lighthouse",
        model=model,
        scheduler="euler",
        steps=4,
        guidance_scale=7.0,
        width=64,
        height=64,
        seed=1,
    )
    labeling = LabelingRun.objects.create(
        created_by=admin_user,
        status=JobStatus.FAILED,
        labeler=LabelerName.NUDENET,
        album=album,
        image_ids=[image.pk],
    )
    training = TrainingRun.objects.create(created_by=admin_user, status=JobStatus.FAILED, name="Run", model=model)
    training.albums.set([album])
    return World(model, album, image, template, job, labeling, training)


@dataclass(frozen=True)
class Start:
    """How one job kind is started over the API: by whom, where, with what body."""

    client: str  # "admin" or "user"
    path: Callable[[World], str]
    body: Callable[[World], dict] = lambda world: {}


STARTS = {
    "thumbnails": Start("admin", lambda w: "/api/images/rebuild-thumbnails/", lambda w: {"image_ids": [w.image.pk]}),
    "generation job": Start("user", lambda w: "/api/generation/jobs/", lambda w: {"prompt": "a lighthouse"}),
    "generation rerun": Start("user", lambda w: f"/api/generation/jobs/{w.generation_job.pk}/rerun/"),
    "set run": Start("admin", lambda w: f"/api/albums/{w.template.pk}/generate/", lambda w: {"theme": "steampunk"}),
    "labeling an album": Start("admin", lambda w: f"/api/albums/{w.album.pk}/label/", lambda w: {"labeler": "nudenet"}),
    "labeling an image": Start("admin", lambda w: f"/api/images/{w.image.pk}/label/", lambda w: {"labeler": "nudenet"}),
    "labeling retry": Start("admin", lambda w: f"/api/labeling/runs/{w.labeling_run.pk}/retry/"),
    "training run": Start(
        "admin", lambda w: "/api/training/runs/", lambda w: {"name": "Followed LoRA", "albums": [w.album.pk]}
    ),
    "training retry": Start("admin", lambda w: f"/api/training/runs/{w.training_run.pk}/retry/"),
    "scrape": Start("admin", lambda w: "/api/training/scrapes/", lambda w: {"url": "http://127.0.0.1:9/start"}),
}


@pytest.fixture
def clients(admin_client_api, user_client_api) -> dict[str, APIClient]:
    return {"admin": admin_client_api, "user": user_client_api}


@pytest.mark.parametrize("kind", STARTS)
def test_a_202_is_followed_at_its_location(kind, world, clients):
    start = STARTS[kind]
    client = clients[start.client]
    started = client.post(start.path(world), start.body(world), format="json")
    assert started.status_code == 202, started.content
    location = started["Location"]
    assert location.startswith("http://testserver/api/"), location
    assert started.json()["url"] == location
    followed = client.get(location)
    assert followed.status_code == 200, followed.content
    assert (followed.json()["id"], followed.json()["url"]) == (started.json()["id"], location)


def test_a_job_lists_its_url_too(world, admin_client_api):
    """The url a 202 gave is the one lists and details keep answering."""
    job = ThumbnailJob.objects.create(image_ids=[world.image.pk])
    listed = admin_client_api.get("/api/jobs/thumbnails/").json()["results"]
    assert [row["url"] for row in listed] == [f"http://testserver/api/jobs/thumbnails/{job.pk}"]


def _purge_run() -> PurgeRun:
    policy = RetentionPolicy.objects.create(name="Old reports", target=RetentionTarget.BUG_REPORTS, max_age_days=30)
    return PurgeRun.objects.create(policy=policy, target=policy.target, max_age_days=30)


@pytest.mark.parametrize(
    ("make", "route"),
    [(_purge_run, "admin/purge-runs"), (lambda: ImportRun.objects.create(), "admin/import-runs")],
    ids=["purge run", "import run"],
)
def test_a_run_started_outside_the_api_is_followed_there(make, route, admin_client_api):
    """Purges (schedule, admin) and imports (command) start elsewhere; their url still answers them."""
    run = make()
    listed = admin_client_api.get(f"/api/{route}/").json()["results"]
    assert [row["url"] for row in listed] == [f"http://testserver/api/{route}/{run.pk}"]
    followed = admin_client_api.get(listed[0]["url"])
    assert followed.status_code == 200 and followed.json()["id"] == run.pk


@pytest.mark.parametrize(
    ("make", "route"),
    [(_purge_run, "admin/purge-runs"), (lambda: ImportRun.objects.create(), "admin/import-runs")],
    ids=["purge run", "import run"],
)
def test_a_retried_run_started_outside_the_api_is_followed_at_its_location(
    make, route, admin_client_api, django_capture_on_commit_callbacks
):
    run = make()
    type(run).objects.filter(pk=run.pk).update(status=JobStatus.FAILED, error_message="It died.")
    with django_capture_on_commit_callbacks(execute=False):  # the message itself is not the point here
        response = admin_client_api.post(f"/api/{route}/{run.pk}/retry/")
    assert response.status_code == 202, response.content
    location = response["Location"]
    assert location == response.json()["url"] == f"http://testserver/api/{route}/{run.pk}"
    followed = admin_client_api.get(location)
    assert followed.status_code == 200 and followed.json()["id"] == run.pk
    assert followed.json()["status"] == JobStatus.QUEUED and followed.json()["error_message"] == ""


def test_retrying_a_run_that_did_not_fail_is_a_409_and_changes_nothing(admin_client_api):
    run = _purge_run()  # queued
    response = admin_client_api.post(f"/api/admin/purge-runs/{run.pk}/retry/")
    assert_envelope(response, 409, "job_not_retryable")
    assert not response.has_header("Location")
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.attempts == 0


def test_a_refused_start_names_no_location(world, user_client_api):
    response = user_client_api.post("/api/generation/jobs/", {"prompt": ""}, format="json")
    error = assert_envelope(response, 400, "validation_error")
    assert "prompt" in error["details"]["fields"]
    assert not response.has_header("Location")


def test_a_disk_refresh_points_at_the_disk_stats(admin_client_api):
    """No job row: the 202's Location is where the new snapshot shows once stored."""
    cache.set(snapshots._REFRESH_KEY, True, timeout=snapshots.REFRESH_DEDUPE_SECONDS)  # folded: nothing sent
    started = admin_client_api.post("/api/admin/disk-stats/refresh")
    assert started.status_code == 202, started.content
    assert started["Location"] == "http://testserver/api/admin/disk-stats"
    assert admin_client_api.get(started["Location"]).status_code == 200


def test_every_202_of_the_schema_declares_its_location(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    undeclared = [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "202" in operation.get("responses", {})
        and "Location" not in operation["responses"]["202"].get("headers", {})
    ]
    assert undeclared == []


def test_a_job_serializer_without_its_detail_route_says_so(world):
    class Unrouted(JobSerializer):
        class Meta(JobSerializer.Meta):
            model = ThumbnailJob

    with pytest.raises(ImproperlyConfigured, match="Unrouted needs detail_url_name"):
        Unrouted(ThumbnailJob.objects.create(image_ids=[world.image.pk])).data  # noqa: B018
