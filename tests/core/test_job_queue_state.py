"""A queued job that no live worker could take says so, in the admin and in the API.

Worker rows are written here by hand, as the workers themselves would report (imagineer/core/workers.py):
a live worker consuming `generation` (and `default`), and for `training` only a dead one and a
stopped one, which do not count. A job's queue comes from imagineer.celery's TASK_QUEUES table.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generation.models import DiffusionModel, GenerationJob, ModelSource
from imagineer.core.models import CeleryWorker, JobStatus
from legacy.models import ImportRun
from tests.factories import make_worker_row
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

NO_WORKER = "no worker consumes queue"
WORKER_TABLE = CeleryWorker._meta.db_table


@pytest.fixture(autouse=True)
def worker_settings(settings):
    settings.IMAGINEER_WORKER_STALE_AFTER_SECONDS = 45.0


HELD = "generation.tasks.run_generation_job#1"


@pytest.fixture
def workers():
    """generation and default: a live worker. training: a dead worker and a stopped one, nothing live."""
    return {
        "live": make_worker_row(["default", "generation"], name="gpu0@host", held=[HELD], concurrency=2),
        "dead": make_worker_row(["training"], name="trainer@host", held=[HELD], silent_for=600, concurrency=2),
        "stopped": make_worker_row(["training"], name="trainer@old-host", silent_for=30, stopped=True, concurrency=2),
    }


@pytest.fixture
def model():
    return DiffusionModel.objects.create(name="queue-state", source_type=ModelSource.HUB, source="org/m")


@pytest.fixture
def generation_job(model, plain_user):
    def make(**fields) -> GenerationJob:
        fields = {"created_by": plain_user, **fields}
        return GenerationJob.objects.create(
            prompt="p", model=model, scheduler="euler", steps=1, guidance_scale=1, width=64, height=64, seed=1, **fields
        )

    return make


@pytest.fixture
def training_run(model):
    def make(**fields) -> TrainingRun:
        return TrainingRun.objects.create(**{"name": "run", "model": model, **fields})

    return make


def page(browser, url: str) -> str:
    response = browser.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


# --- Admin: the job pages -----------------------------------------------------------------------


def test_job_list_names_the_queue_no_live_worker_consumes(admin_browser, workers, training_run):
    training_run()
    html = page(admin_browser, "/admin/training/trainingrun/")
    assert f"{NO_WORKER} <code>training</code>" in html


def test_job_list_shows_the_plain_status_while_a_live_worker_consumes_the_queue(admin_browser, workers, generation_job):
    generation_job()
    html = page(admin_browser, "/admin/generation/generationjob/")
    assert NO_WORKER not in html
    assert re.search(r'class="field-status">Queued<', html)


def test_a_job_that_is_not_queued_never_waits_for_a_worker(admin_browser, workers, training_run):
    training_run(status=JobStatus.RUNNING)
    training_run(status=JobStatus.FAILED)
    html = page(admin_browser, "/admin/training/trainingrun/")
    assert NO_WORKER not in html
    assert "Running" in html and "Failed" in html


def test_a_worker_that_died_no_longer_consumes_its_queue(admin_browser, workers, generation_job):
    job = generation_job()
    CeleryWorker.objects.filter(pk=workers["live"].pk).update(last_seen_at=timezone.now() - timedelta(minutes=2))
    assert f"{NO_WORKER} <code>generation</code>" in page(admin_browser, "/admin/generation/generationjob/")
    assert NO_WORKER in page(admin_browser, f"/admin/generation/generationjob/{job.pk}/change/")


def test_job_detail_says_no_worker_consumes_its_queue(admin_browser, workers, training_run):
    """The training run's page lays out its own fieldsets naming "status": the base admin reaches them."""
    run = training_run()
    html = page(admin_browser, f"/admin/training/trainingrun/{run.pk}/change/")
    assert f"{NO_WORKER} <code>training</code>" in html


def test_job_detail_shows_the_plain_status_while_a_live_worker_consumes_the_queue(
    admin_browser, workers, generation_job
):
    job = generation_job()
    html = page(admin_browser, f"/admin/generation/generationjob/{job.pk}/change/")
    assert NO_WORKER not in html
    assert re.search(r'<div class="readonly">Queued</div>', html)


def test_job_detail_shows_when_the_task_was_sent_and_how_often_again(admin_browser, workers, generation_job):
    job = generation_job(sent_at=timezone.now(), resend_count=2)
    html = page(admin_browser, f"/admin/generation/generationjob/{job.pk}/change/")
    assert "Sent at" in html and "Resend count" in html
    assert re.search(r'field-resend_count.*?<div class="readonly">2</div>', html, re.S)


def test_job_list_shows_how_often_the_task_was_sent_again(admin_browser, workers, training_run):
    training_run(resend_count=3)
    assert "(sent again 3×)" in page(admin_browser, "/admin/training/trainingrun/")


def test_the_status_column_stays_a_link_where_a_job_admin_makes_it_one(admin_browser, workers):
    """The legacy import list links its status cell (list_display_links): the swapped column keeps it."""
    run = ImportRun.objects.create()
    html = page(admin_browser, "/admin/legacy/importrun/")
    link = f'<a href="/admin/legacy/importrun/{run.pk}/change/">Queued — {NO_WORKER} <code>maintenance</code></a>'
    assert link in html


def test_the_status_column_still_sorts_by_status(admin_browser, workers, training_run):
    training_run(name="b", status=JobStatus.RUNNING)
    training_run(name="a", status=JobStatus.FAILED)
    html = page(admin_browser, "/admin/training/trainingrun/")
    status_index = 1 + re.findall(r'<th scope="col" class="([^"]*)"', html).index("sortable column-status")
    ordered = page(admin_browser, f"/admin/training/trainingrun/?o={status_index}")
    assert ordered.index(">Failed<") < ordered.index(">Running<")


def test_a_job_list_reads_the_workers_once_whatever_its_length(admin_browser, workers, training_run):
    for _ in range(12):
        training_run()
    with CaptureQueriesContext(connection) as captured:
        html = page(admin_browser, "/admin/training/trainingrun/")
    assert html.count(NO_WORKER) == 12
    assert sum(WORKER_TABLE in query["sql"] for query in captured.captured_queries) == 1


# --- Admin: the workers --------------------------------------------------------------------------


def worker_cells(html: str, name: str) -> dict[str, str]:
    """The changelist row of the worker named `name`, as {column: cell text}."""
    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", html, re.S) if f">{name}<" in row)
    return dict(re.findall(r'class="field-(\w+)"[^>]*>(?:<a [^>]*>)?([^<]*)', row))


def test_worker_list_shows_each_workers_state_queues_and_held_jobs(admin_browser, workers):
    html = page(admin_browser, "/admin/core/celeryworker/")
    live, dead, stopped = (worker_cells(html, name) for name in ("gpu0@host", "trainer@host", "trainer@old-host"))
    assert (live["state"], dead["state"], stopped["state"]) == ("Alive", "Dead", "Stopped")
    assert live["queue_list"] == "default, generation"
    assert (live["concurrency"], live["held_job_count"], stopped["held_job_count"]) == ("2", "1", "0")


@pytest.mark.parametrize(("state", "shown"), [("alive", "gpu0@host"), ("dead", "trainer@host")])
def test_worker_list_filters_by_state(admin_browser, workers, state, shown):
    html = page(admin_browser, f"/admin/core/celeryworker/?state={state}")
    names = {"gpu0@host", "trainer@host", "trainer@old-host"}
    assert {name for name in names if f">{name}<" in html} == {shown}


def test_workers_are_read_only_in_the_admin(admin_browser, workers):
    worker = workers["dead"]
    assert admin_browser.get("/admin/core/celeryworker/add/").status_code == 403
    assert admin_browser.get(f"/admin/core/celeryworker/{worker.pk}/delete/").status_code == 403
    detail = page(admin_browser, f"/admin/core/celeryworker/{worker.pk}/change/")
    assert "Dead" in detail and 'type="submit"' not in detail.split('id="celeryworker_form"')[-1].split("</form>")[0]
    assert CeleryWorker.objects.filter(pk=worker.pk).exists()


def test_the_admin_index_lists_celery_workers(admin_browser):
    assert ">Celery workers<" in page(admin_browser, "/admin/")


# --- API --------------------------------------------------------------------------------------


def test_a_job_whose_queue_a_live_worker_consumes_is_not_waiting(user_client_api, workers, generation_job):
    sent = timezone.now() - timedelta(minutes=3)
    job = generation_job(sent_at=sent, resend_count=1)
    body = user_client_api.get(f"/api/generation/jobs/{job.pk}/").json()
    assert (body["queue"], body["resend_count"], body["waiting_for_worker"]) == ("generation", 1, False)
    assert body["sent_at"] == sent.isoformat().replace("+00:00", "Z")


def test_a_queued_job_no_live_worker_could_take_is_waiting(admin_client_api, workers, training_run):
    run = training_run()
    body = admin_client_api.get(f"/api/training/runs/{run.pk}/").json()
    assert (body["queue"], body["waiting_for_worker"], body["sent_at"], body["resend_count"]) == (
        "training",
        True,
        None,
        0,
    )


def test_a_running_job_is_not_waiting_for_a_worker(admin_client_api, workers, training_run):
    run = training_run(status=JobStatus.RUNNING)
    assert admin_client_api.get(f"/api/training/runs/{run.pk}/").json()["waiting_for_worker"] is False


def test_a_job_waits_once_its_queues_last_live_worker_died(user_client_api, workers, generation_job):
    job = generation_job()
    CeleryWorker.objects.filter(pk=workers["live"].pk).update(last_seen_at=timezone.now() - timedelta(minutes=2))
    assert user_client_api.get(f"/api/generation/jobs/{job.pk}/").json()["waiting_for_worker"] is True


def test_list_endpoint_queries_do_not_grow_with_its_jobs(admin_client_api, workers, generation_job):
    def queries_for_list() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client_api.get("/api/generation/jobs/?page_size=50")
        assert response.status_code == 200
        assert all(job["waiting_for_worker"] is False for job in response.json()["results"])
        return len(captured.captured_queries), sum(WORKER_TABLE in q["sql"] for q in captured.captured_queries)

    for _ in range(2):
        generation_job()
    two = queries_for_list()
    for _ in range(8):
        generation_job()
    ten = queries_for_list()
    assert ten == two
    assert two[1] == 1  # the live queues, read once for the page


def test_a_list_without_queued_jobs_does_not_read_the_workers(admin_client_api, workers, generation_job):
    generation_job(status=JobStatus.SUCCEEDED)
    with CaptureQueriesContext(connection) as captured:
        body = admin_client_api.get("/api/generation/jobs/").json()
    assert body["results"][0]["waiting_for_worker"] is False
    assert not any(WORKER_TABLE in query["sql"] for query in captured.captured_queries)


def test_the_schema_describes_the_queue_state_fields(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    properties = schema["components"]["schemas"]["GenerationJob"]["properties"]
    assert properties["queue"]["type"] == "string"
    assert properties["resend_count"]["type"] == "integer"
    assert (properties["sent_at"]["format"], properties["sent_at"].get("nullable")) == ("date-time", True)
    assert properties["waiting_for_worker"]["type"] == "boolean"
    for name in ("queue", "sent_at", "resend_count", "waiting_for_worker"):
        assert properties[name].get("readOnly") is True, name
        assert properties[name].get("description"), name
