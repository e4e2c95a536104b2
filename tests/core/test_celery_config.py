"""The Celery app: queues, routes by task, late acks, per-queue time limits, beat schedule."""

import pytest

from imagineer.celery import QUEUES, TASK_QUEUES, app, queue_for_task


def test_queues_and_reliability_settings():
    assert (
        {q.name for q in app.conf.task_queues}
        == set(QUEUES)
        == {"default", "generation", "training", "scraping", "labeling", "maintenance"}
    )
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_routes_by_task_name():
    assert queue_for_task("albums.tasks.rebuild_thumbnails") == "default"
    assert queue_for_task("generation.tasks.run_generation_job") == "generation"
    assert queue_for_task("training.tasks.train_lora") == "training"
    assert queue_for_task("training.tasks.scrape_site") == "scraping"
    assert queue_for_task("labeling.tasks.run_labeling_run") == "labeling"
    assert queue_for_task("imagineer.core.tasks.reap_stale_jobs") == "maintenance"
    assert queue_for_task("imagineer.core.tasks.resend_lost_jobs") == "maintenance"
    assert app.amqp.router.route({}, "labeling.tasks.run_labeling_run")["queue"].name == "labeling"


def test_routing_names_tasks_exactly_so_a_renamed_task_is_not_moved_by_a_pattern():
    # A glob like "training.tasks.train_*" once decided queues; a task renamed to scrape_* would
    # have moved to the scraping queue without anyone noticing. Now a name is routed or it is not.
    assert queue_for_task("training.tasks.train_lora_v2") == "default"
    assert queue_for_task("generation.tasks.anything_new") == "default"


def test_every_registered_task_has_an_explicit_queue():
    app.loader.import_default_modules()  # what a worker does at start: autodiscover tasks
    ours = {name for name in app.tasks if not name.startswith(("celery.", "tests."))}
    assert ours and ours <= set(TASK_QUEUES), f"tasks without a queue in TASK_QUEUES: {sorted(ours - set(TASK_QUEUES))}"
    assert set(TASK_QUEUES.values()) <= set(QUEUES)


def test_every_job_kinds_task_is_registered_under_its_models_task_name():
    from imagineer.core.jobs import job_models

    app.loader.import_default_modules()
    for model in job_models():
        assert model.task_name in app.tasks, model
        assert model.task_name in TASK_QUEUES, model


def test_each_task_gets_its_queues_time_limits(settings):
    app.loader.import_default_modules()  # what a worker does at start: autodiscover tasks
    task = app.tasks["albums.tasks.rebuild_thumbnails"]
    soft, hard = settings.CELERY_QUEUE_TIME_LIMITS["default"]
    assert (task.soft_time_limit, task.time_limit) == (soft, hard)
    reaper = app.tasks["imagineer.core.tasks.reap_stale_jobs"]
    assert (reaper.soft_time_limit, reaper.time_limit) == settings.CELERY_QUEUE_TIME_LIMITS["maintenance"]
    assert settings.CELERY_QUEUE_TIME_LIMITS["training"][1] > settings.CELERY_QUEUE_TIME_LIMITS["generation"][1]


@pytest.mark.parametrize(
    "entry, task",
    [
        ("reap-stale-jobs", "imagineer.core.tasks.reap_stale_jobs"),
        ("resend-lost-jobs", "imagineer.core.tasks.resend_lost_jobs"),
    ],
)
def test_beat_runs_the_job_sweeps_every_sweep_interval(settings, entry, task):
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    scheduled = app.conf.beat_schedule[entry]
    assert scheduled["task"] == task and queue_for_task(task) == "maintenance"
    assert scheduled["schedule"] == settings.IMAGINEER_JOB_SWEEP_SECONDS
    # A message nobody consumed expires before the next one is sent: no backlog without a worker.
    assert 0 < scheduled["options"]["expires"] < scheduled["schedule"]


def test_worker_and_beat_refuse_an_unsafe_production_setup(settings, capsys):
    """Not only logged: Celery swallows a handler's Exception, so the process must really exit."""
    from celery import signals

    from imagineer.celery import _refuse_unsafe_production

    for signal in (signals.worker_init, signals.beat_init):
        assert _refuse_unsafe_production in [receiver() for _, receiver in signal.receivers]
    _refuse_unsafe_production()  # development settings: nothing to refuse

    settings.IMAGINEER_ENV = "production"
    settings.IS_PRODUCTION = True
    settings.SECRET_KEY = settings.INSECURE_DEFAULT_SECRET_KEY
    with pytest.raises(SystemExit) as exit_:
        signals.beat_init.send(sender=None)  # through Celery's dispatch, which swallows Exceptions
    assert exit_.value.code == 1
    assert "Refusing to start in production" in capsys.readouterr().err
