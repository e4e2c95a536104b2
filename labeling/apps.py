from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _label_tally_after_migrate(sender, using, **kwargs) -> None:
    """Reinstall the tally's triggers after migrate where a table rebuild dropped them (labeling/tally.py)."""
    from labeling.tally import sync_after_migrate

    sync_after_migrate(using)


class LabelingConfig(AppConfig):
    name = "labeling"

    def ready(self) -> None:
        # sender=self: post_migrate is sent once per app; act once per migrate.
        post_migrate.connect(_label_tally_after_migrate, sender=self, dispatch_uid="labeling.tally_after_migrate")
