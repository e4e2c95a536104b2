"""The Celery app: queues, routes by task, late acks, per-queue time limits, beat schedule."""

from imagineer.celery import QUEUES, app, queue_for_task


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
    assert queue_for_task("labeling.tasks.label_album") == "labeling"
    assert queue_for_task("imagineer.core.tasks.reap_stale_jobs") == "maintenance"
    assert app.amqp.router.route({}, "labeling.tasks.label_album")["queue"].name == "labeling"


def test_each_task_gets_its_queues_time_limits(settings):
    app.loader.import_default_modules()  # what a worker does at start: autodiscover tasks
    task = app.tasks["albums.tasks.rebuild_thumbnails"]
    soft, hard = settings.CELERY_QUEUE_TIME_LIMITS["default"]
    assert (task.soft_time_limit, task.time_limit) == (soft, hard)
    reaper = app.tasks["imagineer.core.tasks.reap_stale_jobs"]
    assert (reaper.soft_time_limit, reaper.time_limit) == settings.CELERY_QUEUE_TIME_LIMITS["maintenance"]
    assert settings.CELERY_QUEUE_TIME_LIMITS["training"][1] > settings.CELERY_QUEUE_TIME_LIMITS["generation"][1]


def test_beat_runs_the_stale_job_reaper_from_the_database_scheduler():
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert app.conf.beat_schedule["reap-stale-jobs"]["task"] == "imagineer.core.tasks.reap_stale_jobs"
