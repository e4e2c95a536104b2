from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _label_tally_after_migrate(sender, using, **kwargs) -> None:
    """Reinstall the tally's triggers after migrate where a table rebuild dropped them (labeling/tally.py)."""
    from labeling.tally import sync_after_migrate

    sync_after_migrate(using)


class LabelingConfig(AppConfig):
    name = "labeling"

    def ready(self) -> None:
        from albums.services import register_check_requester
        from labeling.autocheck import request_nsfw_checks

        # sender=self: post_migrate is sent once per app; act once per migrate.
        post_migrate.connect(_label_tally_after_migrate, sender=self, dispatch_uid="labeling.tally_after_migrate")
        # albums marks images that are to be public pending; labeling queues their NSFW check.
        register_check_requester(request_nsfw_checks)
