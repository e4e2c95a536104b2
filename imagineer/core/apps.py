from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting pieces: the user model, the job lifecycle, checks, auth hooks."""

    name = "imagineer.core"
    label = "core"
    verbose_name = "Imagineer core"

    def ready(self) -> None:
        from imagineer.core import auth, checks  # noqa: F401  (registers signals and checks)
