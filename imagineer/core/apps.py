import sys

from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    """Cross-cutting pieces: the user model, the job lifecycle, checks, auth hooks."""

    name = "imagineer.core"
    label = "core"
    verbose_name = "Imagineer core"

    def ready(self) -> None:
        from imagineer.core import auth, checks  # noqa: F401  (registers signals and checks)
        from imagineer.core.logging import configure_path_redaction

        configure_path_redaction(settings.BASE_DIR, settings.DATA_DIR, settings.MEDIA_ROOT, sys.prefix, sys.base_prefix)
