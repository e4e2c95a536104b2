from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        register_quota_meters()


def register_quota_meters() -> None:
    """A training run's trainer time counts as GPU time for the per-user quota (imagineer.core.quotas)."""
    from django.db.models import Sum

    from imagineer.core.quotas import register_meter
    from training.models import TrainingRun

    def gpu_seconds(user, since) -> float:
        spent = TrainingRun.objects.filter(created_by=user, finished_at__gte=since).aggregate(s=Sum("train_seconds"))
        return spent["s"] or 0.0

    register_meter("gpu_seconds", "training", gpu_seconds)
