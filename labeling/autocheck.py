"""The NSFW autocheck: nothing becomes public before it was checked.

albums marks an image `pending` when it is stored to be public (or a private one is made public)
while IMAGINEER_NSFW_AUTOCHECK is on, shows it to its owner and admins only, and once the storing
transaction commits hands its id to `request_nsfw_checks` (registered in LabelingConfig.ready()).
That queues one NsfwCheckJob for the images stored together, on the `labeling` queue, with the
runtime config's `labeling.autocheck_labeler` (nudenet, or claude with ANTHROPIC_API_KEY).

The job rates each image as a labeling run would (labels, LabelerResult, the rating through
albums.services.apply_machine_nsfw_rating, which respects an admin's manual flag) and ends its
check in the same transaction: `passed` whatever the rating (is_nsfw hides an NSFW one), or
`failed` with the labeler's reason, which only an admin's "Check NSFW now" retries.

A check job that dies (worker killed, then reaped; a message lost, then failed by the lost-job
sweep; cancelled) leaves its images pending: `sweep_nsfw_checks` (beat) queues their check again,
up to MAX_CHECK_ATTEMPTS jobs per image, then fails it with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from albums import services as album_services
from albums.models import CHECK_OPEN, Image, NsfwCheck
from imagineer.core import jobs
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.models import JobStatus
from imagineer.core.runtime_config import get_runtime_config
from labeling.labelers import LabelerUnavailable, LabelingFailed, build_labeler, labeler_source_model
from labeling.models import NsfwCheckJob
from labeling.services import count_outcome, open_stored_image, store_labeler_result

logger = get_logger(__name__)

# Check jobs queued for one image (the first included) before the sweep gives up on it.
MAX_CHECK_ATTEMPTS = 3
# Images per job the sweep queues again: a lost legacy import batch becomes a few jobs, not one huge one.
SWEEP_BATCH = 500
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class NsfwCheckFailed(ImagineerError):
    code = "nsfw_check_failed"


def _held_by_active_job() -> Exists:
    """An image that a queued or running check job will reach: not the sweep's to queue again."""
    return Exists(
        NsfwCheckJob.images.through.objects.filter(image_id=OuterRef("pk"), nsfwcheckjob__status__in=ACTIVE_STATUSES)
    )


def autocheck_labeler_name() -> str:
    return get_runtime_config().labeling.autocheck_labeler


def request_nsfw_checks(image_ids: Sequence[int], *, user=None) -> NsfwCheckJob | None:
    """Queue one check job over those of these images that are pending and in no queued or running check.

    None when there is nothing to queue. The labeler is the runtime config's autocheck labeler;
    whether it can run here is the job's to find out, so a Claude without a key fails each image's
    check with that reason, where an admin sees it.
    """
    ids = list(dict.fromkeys(image_ids))
    with transaction.atomic():
        todo = list(
            Image.objects.filter(pk__in=ids, nsfw_check=NsfwCheck.PENDING)
            .exclude(_held_by_active_job())
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not todo:
            return None
        name = autocheck_labeler_name()
        job = NsfwCheckJob.objects.create(
            labeler=name,
            source_model=labeler_source_model(name),
            progress_total=len(todo),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        job.images.set(todo)
        album_services.record_nsfw_checks_queued(todo)
        jobs.enqueue_job(job)
    logger.info("nsfw_check.queued", check_job_id=job.pk, images=len(todo), labeler=name)
    return job


def check_images_now(image_ids: Sequence[int], *, user=None) -> NsfwCheckJob | None:
    """An admin's "Check NSFW now": the images' check starts again (hidden until it passes) and is queued.

    Images a queued or running check already holds keep that one (None when all of them are).
    """
    ids = list(dict.fromkeys(image_ids))
    album_services.existing_image_ids(ids)
    with transaction.atomic():
        album_services.mark_nsfw_checks_pending(ids)
        return request_nsfw_checks(ids, user=user)


# --- The check job -----------------------------------------------------------------------------


def run_nsfw_check(job: NsfwCheckJob) -> None:
    """Job body: rate each of the job's unsettled images and end its check (passed, or failed with why).

    Per image one transaction holds the labels, the rating, the check's end and the job's counter:
    a worker whose attempt was reaped meanwhile (JobLost) writes none of it. A retried job checks
    its images still pending or failed again.
    """
    ids = list(job.images.filter(nsfw_check__in=CHECK_OPEN).order_by("pk").values_list("pk", flat=True))
    total = len(ids)
    try:
        labeler = build_labeler(job.labeler)
    except LabelerUnavailable as exc:
        reason = f"The NSFW check could not run: {exc.message} (runtime config labeling.autocheck_labeler)"
        album_services.end_nsfw_checks(ids, passed=False, reason=reason)
        raise NsfwCheckFailed(reason) from exc
    first_error = ""
    for done, image_id in enumerate(ids, start=1):
        result = None
        try:
            image = Image.objects.filter(pk=image_id).first()
            if image is None:
                raise LabelingFailed("The image was deleted before it was checked.")
            result = labeler.label(open_stored_image(image))
            with transaction.atomic():
                store_labeler_result(image_id, result, labeler=job.labeler, source_model=labeler.source_model)
                album_services.end_nsfw_checks([image_id], passed=True)
                count_outcome(job, result, succeeded="passed_count")
        except (jobs.JobCancelled, jobs.JobLost):
            raise
        except Exception as exc:  # noqa: BLE001 - this image's check fails with its reason, the others go on
            known = isinstance(exc, LabelingFailed)
            reason = str(exc) if known else jobs.describe_failure(exc)
            first_error = first_error or reason
            logger.warning("nsfw_check.image_failed", check_job_id=job.pk, image_id=image_id, reason=reason)
            with transaction.atomic():
                album_services.end_nsfw_checks([image_id], passed=False, reason=reason)
                count_outcome(job, exc if known else result, failure={"image_id": image_id, "error": reason})
        jobs.record_progress(job, done, total, f"{done}/{total} images")
    logger.info("nsfw_check.done", check_job_id=job.pk, passed=job.passed_count, failed=job.failed_count)
    if total and job.passed_count == 0:
        raise NsfwCheckFailed(f"The check of all {total} image(s) failed. First error: {first_error}")


# --- The sweep ---------------------------------------------------------------------------------


def _give_up_reason(image_id: int, attempts: int) -> str:
    last = (
        NsfwCheckJob.objects.filter(images=image_id)
        .order_by("-created_at", "-pk")
        .values_list("pk", "status", "error_message")
        .first()
    )
    what = "no check job is left"
    if last is not None:
        what = f"the last one, NSFW check #{last[0]}, {last[1]}" + (f": {last[2]}" if last[2] else "")
    return (
        f"No check finished after {attempts} attempt(s) ({what}). Check the `labeling` queue's workers "
        '(admin: Celery workers), then use "Check NSFW now".'
    )


def sweep_nsfw_checks(*, now: datetime | None = None) -> tuple[int, int]:
    """Beat: check again the pending images no queued or running check job holds; (queued again, failed).

    Their job died or was lost (reaped, failed by the lost-job sweep, cancelled), or the process
    that stored them died before it could queue one. An image marked or queued within the last
    IMAGINEER_JOB_SWEEP_SECONDS is left alone (its job may be on its way); one that has had
    MAX_CHECK_ATTEMPTS jobs fails its check with the reason. Runs whether or not the autocheck is
    on now: an image once marked pending is checked before it is shown.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGINEER_JOB_SWEEP_SECONDS)
    orphans = (
        Image.objects.filter(nsfw_check=NsfwCheck.PENDING)
        .filter(Q(nsfw_check_at__lt=cutoff) | Q(nsfw_check_at__isnull=True))
        .exclude(_held_by_active_job())
        .order_by("pk")
    )
    failed = 0
    for image_id, attempts in orphans.filter(nsfw_check_attempts__gte=MAX_CHECK_ATTEMPTS).values_list(
        "pk", "nsfw_check_attempts"
    ):
        failed += album_services.end_nsfw_checks([image_id], passed=False, reason=_give_up_reason(image_id, attempts))
    again = list(orphans.filter(nsfw_check_attempts__lt=MAX_CHECK_ATTEMPTS).values_list("pk", flat=True))
    requeued = 0
    for start in range(0, len(again), SWEEP_BATCH):
        # A broker that cannot be reached fails the sweep (its job is recorded failed): the next one tries again.
        job = request_nsfw_checks(again[start : start + SWEEP_BATCH])
        requeued += job.progress_total if job is not None else 0
    if requeued or failed:
        logger.warning("nsfw_check.sweep", requeued=requeued, failed=failed)
    return requeued, failed
