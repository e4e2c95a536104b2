from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting pieces: the user model, the job lifecycle, checks, auth hooks."""

    name = "imagineer.core"
    label = "core"
    verbose_name = "Imagineer core"

    def ready(self) -> None:
        # auth: sign-in signals; checks: system checks; workers: a Celery worker's report of what it
        # holds (worker_ready, task_received, worker_shutdown).
        from imagineer.core import auth, checks, workers  # noqa: F401
