"""Retention: what may be deleted after how long, and the runs that did it."""

from django.core.validators import MinValueValidator
from django.db import models

from imagineer.core.models import AbstractJob


class RetentionTarget(models.TextChoices):
    GENERATION_SCRATCH = "generation_scratch", "Generation job scratch files"
    ORPHANED_MEDIA = "orphaned_media", "Media files no row refers to"
    SCRAPED_UNALBUMED = "scraped_unalbumed", "Scraped images in no album"
    TRAINING_ARTIFACTS = "training_artifacts", "Training scratch and logs"
    BUG_REPORTS = "bug_reports", "Bug reports"
    DISK_SNAPSHOTS = "disk_snapshots", "Old disk snapshots"


class RetentionPolicy(models.Model):
    """One target, one age. Its schedule is a django-celery-beat PeriodicTask operators edit in admin."""

    name = models.CharField(max_length=100, unique=True)
    target = models.CharField(max_length=32, choices=RetentionTarget.choices)
    max_age_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Only what is older than this many days is removed."
    )
    enabled = models.BooleanField(default=True)
    dry_run = models.BooleanField(
        default=False, help_text="Count what would be removed, remove nothing (the last run result says what)."
    )
    include_album_images = models.BooleanField(
        default=False,
        help_text="Also remove images that belong to an album. Off: album images are never removed by this policy.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retention_policy",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_status = models.CharField(max_length=16, blank=True)
    # {"dry_run", "files_removed", "rows_removed", "bytes_freed", "errors": [...]} of the last finished run.
    last_result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "retention policies"
        constraints = [
            # 0 days would put the cutoff at "now" and remove everything the target covers.
            models.CheckConstraint(condition=models.Q(max_age_days__gte=1), name="retention_max_age_at_least_one_day"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_target_display()}, {self.max_age_days} d)"


class PurgeRun(AbstractJob):
    """One run of a policy (scheduled or "run now"), through the shared job lifecycle."""

    policy = models.ForeignKey(RetentionPolicy, on_delete=models.CASCADE, related_name="runs")
    target = models.CharField(max_length=32, choices=RetentionTarget.choices)
    max_age_days = models.PositiveIntegerField()
    dry_run = models.BooleanField(default=False)
    include_album_images = models.BooleanField(default=False)
    files_removed = models.PositiveIntegerField(default=0)
    rows_removed = models.PositiveIntegerField(default=0)
    bytes_freed = models.PositiveBigIntegerField(default=0)
    # Dry run: what would go (relative names, at most a few hundred); real run: what could not be removed.
    details = models.JSONField(default=dict, blank=True)

    task_name = "imagineer.ops.tasks.run_purge"
    retry_reset_fields = {"files_removed": 0, "rows_removed": 0, "bytes_freed": 0, "details": {}}

    class Meta(AbstractJob.Meta):
        verbose_name = "purge run"
