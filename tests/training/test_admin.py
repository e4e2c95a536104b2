"""Training runs in admin: start from albums, follow progress and the log, retry within the limits."""

import pytest
from django.test import Client

from generation.models import DiffusionModel, ModelSource
from imagineer.core.models import JobStatus
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def model(db):
    return DiffusionModel.objects.create(
        name="sd-admin", source_type=ModelSource.DIFFUSERS_DIR, source="models/x", family="sd1", is_default=True
    )


ADD = "/admin/training/trainingrun/add/"


def test_the_album_action_opens_the_form_with_the_albums_chosen(browser, captioned_album):
    albums = [captioned_album(1, name="A"), captioned_album(1, name="B")]
    response = browser.post(
        "/admin/albums/album/", {"action": "train_lora", "_selected_action": [a.pk for a in albums]}
    )
    assert response.status_code == 302 and response["Location"].startswith(ADD)
    form = browser.get(response["Location"]).context["adminform"].form
    assert sorted(int(pk) for pk in form.initial["albums"]) == sorted(a.pk for a in albums)


def test_the_form_refuses_too_few_captions_and_starts_a_valid_run(browser, captioned_album, training_config, model):
    training_config(min_captioned_images=3)
    small, big = captioned_album(2, uncaptioned=1), captioned_album(3)
    refused = browser.post(ADD, {"name": "Small", "albums": [small.pk], "model": model.pk, "steps": 10})
    assert refused.status_code == 200
    assert "Found 2 captioned image(s)" in str(refused.context["adminform"].form.non_field_errors())
    bad_steps = browser.post(ADD, {"name": "Bad", "albums": [big.pk], "model": model.pk, "steps": 0})
    assert "steps" in bad_steps.context["adminform"].form.errors
    assert not TrainingRun.objects.exists()
    started = browser.post(ADD, {"name": "Big", "albums": [big.pk], "model": model.pk, "steps": 10, "rank": 8})
    assert started.status_code == 302, started.context["adminform"].form.errors if started.context else ""
    run = TrainingRun.objects.get()
    assert (run.name, run.status, run.parameters["steps"], run.parameters["rank"]) == ("Big", "queued", 10, 8)
    assert list(run.albums.all()) == [big]


def test_the_run_page_follows_progress_and_the_log(browser, captioned_album, training_config, model, media_root):
    training_config(min_captioned_images=1)
    run = TrainingRun.objects.create(
        name="R",
        model=model,
        status=JobStatus.RUNNING,
        progress_current=3,
        progress_total=10,
        log_file="training/logs/run-x.log",
    )
    (media_root / "training" / "logs").mkdir(parents=True)
    (media_root / "training" / "logs" / "run-x.log").write_text("loading\nstep 3/10 loss 0.1 <b>\n")
    page = browser.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in page and "step 3 of 10" in page
    assert "step 3/10 loss 0.1 &lt;b&gt;" in page  # escaped
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED)
    finished = browser.get(f"/admin/training/trainingrun/{run.pk}/change/")
    assert finished.status_code == 200 and "step 3/10 loss 0.1 &lt;b&gt;" in finished.content.decode()
    assert 'http-equiv="refresh"' not in finished.content.decode()  # a finished run's page stops reloading


def test_retry_from_admin_respects_the_active_limit(browser, training_config, model):
    training_config(max_active_runs=1)
    failed = TrainingRun.objects.create(name="F", model=model, status=JobStatus.FAILED)
    TrainingRun.objects.create(name="Busy", model=model, status=JobStatus.RUNNING)
    response = browser.post(
        "/admin/training/trainingrun/", {"action": "retry_jobs", "_selected_action": [failed.pk]}, follow=True
    )
    assert "limit is 1" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED
