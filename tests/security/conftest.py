"""Fixtures of the security suites: a client per role, the Celery tasks a test publishes, and the world
the authorization matrix is played in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from celery.signals import before_task_publish
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from albums.models import AlbumImage, ThumbnailJob
from generation.models import DiffusionModel, GenerationJob, Lora, ModelFamily, ModelSource, SetRun
from imagineer.core.models import JobStatus
from imagineer.ops.models import BugReport, DiskSnapshot, PurgeRun, RetentionPolicy, RetentionTarget
from imagineer.ops.services.disk import snapshots
from labeling.models import Label, LabelerName, LabelingRun, LabelType
from legacy.models import ImportRun
from tests.factories import AdminFactory, AlbumFactory, UserFactory, make_image
from tests.security.helpers import Roles
from training.models import ScrapeJob, TrainingRun


@pytest.fixture
def roles(db) -> Roles:
    """anon; "user", who owns things; "other", a second signed-in user; "admin" (is_staff)."""
    users = {
        "anon": None,
        "user": UserFactory(username="owner"),
        "other": UserFactory(username="other"),
        "admin": AdminFactory(username="boss"),
    }
    clients = {}
    for role, user in users.items():
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        clients[role] = client
    return Roles(users=users, clients=clients)


@pytest.fixture
def published_tasks() -> Iterator[list[str]]:
    """The names of the Celery tasks sent while the test runs (Celery's own publish signal)."""
    sent: list[str] = []

    def record(sender=None, **_):
        sent.append(sender)

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


@pytest.fixture
def matrix_world(roles, runtime_config_file) -> dict[str, int | str]:
    """One of everything the API serves, by the name the matrix uses for it → its id.

    "user" owns the private image, the two public images the NSFW check has not cleared (pending,
    failed) and the generation job. Jobs are rows made here, never through
    the API, so nothing is sent to a queue. Training limits are lowered so an admin's start can be
    accepted (202) on this small dataset instead of refused for want of captions.
    """
    runtime_config_file.write_text(
        yaml.safe_dump({"training": {"min_captioned_images": 1, "max_active_runs": 8}}), encoding="utf-8"
    )
    owner, admin = roles.users["user"], roles.users["admin"]
    model = DiffusionModel.objects.create(
        name="matrix-model", source_type=ModelSource.HUB, source="example/matrix-model", family=ModelFamily.SD1
    )
    DiffusionModel.objects.filter(pk=model.pk).update(
        is_default=not DiffusionModel.objects.filter(is_default=True).exists()
    )

    album_public = AlbumFactory(name="Public album", is_public=True)
    album_private = AlbumFactory(name="Private album", is_public=False)
    template = AlbumFactory(
        name="Deck template", is_set_template=True, template_items=[{"card": "Ace"}], prompt_template="{card}"
    )
    image_public = make_image(album=album_public, prompt="a public lighthouse", user=admin)
    image_private = make_image(album=album_public, prompt="the owner's draft", is_public=False, user=owner)
    image_nsfw = make_image(album=album_public, prompt="an nsfw one", is_nsfw=True, user=admin)
    # Public, but not (yet) cleared by the NSFW check: the owner's and the admins' only.
    image_pending = make_image(album=album_public, prompt="waiting for its check", user=owner, nsfw_check="pending")
    image_check_failed = make_image(album=album_public, prompt="its check failed", user=owner, nsfw_check="failed")
    AlbumImage.objects.create(album=album_private, image=image_public, sort_order=1)

    def label(image, text, label_type=LabelType.TAG):
        return Label.objects.create(image=image, text=text, label_type=label_type).pk

    ids = {
        "album_public": album_public.pk,
        "album_private": album_private.pk,
        "template": template.pk,
        "image_public": image_public.pk,
        "image_private": image_private.pk,
        "image_nsfw": image_nsfw.pk,
        "image_pending": image_pending.pk,
        "image_check_failed": image_check_failed.pk,
        "label_public": label(image_public, "lighthouse"),
        "label_private": label(image_private, "owner draft"),
        "label_nsfw": label(image_nsfw, "nsfw tag"),
        "model": model.name,
    }
    label(image_public, "a lighthouse at dusk", LabelType.CAPTION)  # what a training run needs

    ids["generation_job"] = GenerationJob.objects.create(
        created_by=owner,
        prompt="a matrix prompt",
        model=model,
        scheduler="euler",
        steps=4,
        guidance_scale=7.0,
        width=64,
        height=64,
        seed=1,
    ).pk
    ids["set_run"] = SetRun.objects.create(
        created_by=admin, template=template, album_name="Deck", theme="steampunk", model=model
    ).pk
    failed_job = GenerationJob.objects.get(pk=ids["generation_job"])
    failed_job.pk, failed_job.status = None, JobStatus.FAILED
    failed_job.save()
    ids["generation_job_failed"] = failed_job.pk
    ids["set_run_failed"] = SetRun.objects.create(
        created_by=admin, template=template, album_name="Deck", theme="steampunk", model=model, status=JobStatus.FAILED
    ).pk
    ids["thumbnail_job"] = ThumbnailJob.objects.create(created_by=admin, image_ids=[image_public.pk]).pk
    ids["lora"] = Lora.objects.create(
        name="Matrix LoRA", slug="matrix-lora", file="loras/matrix-lora.safetensors", sha256="a" * 64, family="sd1"
    ).pk
    ids["lora_disabled"] = Lora.objects.create(
        name="Hidden LoRA",
        slug="hidden-lora",
        file="loras/hidden-lora.safetensors",
        sha256="b" * 64,
        family="sd1",
        enabled=False,
    ).pk
    for status in (JobStatus.QUEUED, JobStatus.FAILED):
        ids[f"labeling_run_{status}"] = LabelingRun.objects.create(
            created_by=admin,
            status=status,
            labeler=LabelerName.NUDENET,
            album=album_public,
            image_ids=[image_public.pk],
        ).pk
        run = TrainingRun.objects.create(created_by=admin, status=status, name=f"Run {status}", model=model)
        run.albums.set([album_public])
        ids[f"training_run_{status}"] = run.pk
    ids["scrape_job"] = ScrapeJob.objects.create(
        created_by=admin, name="A scrape", start_url="http://127.0.0.1:9/start"
    ).pk
    ids["bug_report"] = BugReport.objects.create(
        report_id="bug_20300101_000000_matrix", description="It broke", submitted_by=admin
    ).report_id
    policy = RetentionPolicy.objects.create(name="Matrix policy", target=RetentionTarget.BUG_REPORTS, max_age_days=30)
    ids["purge_run"] = PurgeRun.objects.create(policy=policy, target=policy.target, max_age_days=30).pk
    ids["import_run"] = ImportRun.objects.create(created_by=admin).pk
    ids["purge_run_failed"] = PurgeRun.objects.create(
        policy=policy, target=policy.target, max_age_days=30, status=JobStatus.FAILED
    ).pk
    ids["import_run_failed"] = ImportRun.objects.create(created_by=admin, status=JobStatus.FAILED).pk
    DiskSnapshot.objects.create(taken_at=timezone.now(), threshold_percent=85)
    # A refresh asked for a moment ago: an admin's refresh is then folded into it (202) and no
    # snapshot task is sent to the broker, where a later test's worker would pick it up.
    cache.set(snapshots._REFRESH_KEY, True, timeout=snapshots.REFRESH_DEDUPE_SECONDS)
    return ids
