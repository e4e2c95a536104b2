from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The project's user. Kept as our own model so fields can be added without a migration fight."""

    class Meta:
        db_table = "core_user"


class Invitation(models.Model):
    """An admin's invitation: the first Google sign-in with this verified address gets an account.

    Used once, and only before `expires_at` (IMAGINEER_INVITE_DAYS after it was made by default).
    """

    email = models.EmailField(help_text="The Google account's address, compared without case.")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True, help_text="Why, for the other admins.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "core_invitation"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["email", "expires_at"], name="invitation_email_expiry")]

    def __str__(self) -> str:
        return f"Invitation #{self.pk}"


class UserQuota(models.Model):
    """One user's quota overrides (empty: the runtime config's `quotas` defaults), and their lock row.

    imagineer.core.quotas locks this row while it counts a user's use and admits a request, so
    parallel requests from one user are admitted one after another.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    images_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the default.")
    concurrent_jobs = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the default.")
    gpu_seconds_per_day = models.PositiveIntegerField(
        "GPU seconds per day", null=True, blank=True, help_text="Empty: the default."
    )
    exempt = models.BooleanField(
        null=True,
        blank=True,
        help_text="Empty: admins are exempt, everybody else is not. Yes/No decides for this user.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "core_user_quota"

    def __str__(self) -> str:
        return f"Quota of user #{self.user_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class AbstractJob(models.Model):
    """One lifecycle for every background job (thumbnails, generation, training, imports, ...).

    The row is the single source of truth for a job's state; Celery only carries its id. All state
    changes go through imagineer.core.jobs, which makes each transition a conditional UPDATE so two
    workers (late acks, redelivery) can never both run the same job.
    """

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress_current = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="Celery worker host that claimed the job.")
    # The request that enqueued the job, so its log lines can be joined with the worker's.
    request_id = models.CharField(max_length=128, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the job's task message was last sent (enqueue, retry, or the sweep sending it again), and
    # how often the sweep sent it again because no live worker held it (imagineer.core.jobs.resend_lost_jobs).
    sent_at = models.DateTimeField(null=True, blank=True)
    resend_count = models.PositiveSmallIntegerField(
        default=0, help_text="Times the sweep sent the task again because no live worker held its message."
    )
    updated_at = models.DateTimeField(auto_now=True)

    # The Celery task (dotted name) that runs this kind of job; set by each concrete model.
    task_name: str = ""
    # Fields of the concrete kind that a retry starts afresh (counters, failure lists).
    retry_reset_fields: dict = {}

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} #{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> float:
        if not self.progress_total:
            return 1.0 if self.status == JobStatus.SUCCEEDED else 0.0
        return min(1.0, self.progress_current / self.progress_total)

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return round((end - self.started_at).total_seconds(), 3)


class CeleryWorker(models.Model):
    """One Celery worker process as it last reported itself (imagineer.core.workers).

    Each start of a worker is a row of its own (`instance`), so a worker restarted under the same
    node name is not mistaken for the one that died holding messages. A live worker refreshes
    `last_seen_at` every IMAGINEER_WORKER_HEARTBEAT_SECONDS; a row not refreshed for
    IMAGINEER_WORKER_STALE_AFTER_SECONDS (and not stopped) is a worker that died, and the jobs in its
    `held_jobs` were lost with it.
    """

    instance = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=255, help_text="Celery node name, e.g. gpu0@host.")
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveSmallIntegerField(default=1)
    # "task name#job id" of every job message the worker holds (reserved or running), and the task
    # ids of those messages: a job sent again after its holder died has a new task id, which tells
    # the sweep that the message the dead worker took with it is no longer the job's last one.
    held_jobs = models.JSONField(default=list, blank=True)
    held_task_ids = models.JSONField(default=list, blank=True)
    # Since when the worker has had a free pool slot without a break (null while every slot is
    # busy): a worker with a free slot takes any message waiting in its queues at once.
    free_slot_since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "core_celery_worker"
        ordering = ["name", "-started_at"]

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"
