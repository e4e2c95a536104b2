"""Labels and labeling runs: manual labels, storing what a labeler found, runs over albums and images.

Machine labels are owned by their source (the labeler): labeling an image again replaces that
source's captions and tags in one transaction, so nothing is ever appended twice, and labels a
person wrote (`source=manual`) are never touched by a machine run.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from PIL import Image as PILImage

from albums import services as album_services
from albums.models import NSFW_SEVERITY, Album, Image
from imagineer.core import jobs
from imagineer.core.errors import ConflictError, ImagineerError
from imagineer.core.logging import get_logger
from labeling.labelers import (
    LabelingFailed,
    LabelResult,
    build_labeler,
    check_labeler,
    default_labeler_name,
    labeler_source_model,
)
from labeling.models import (
    LABEL_TEXT_MAX,
    TAG_TEXT_MAX,
    Label,
    LabelerResult,
    LabelingRun,
    LabelSource,
    LabelType,
    label_text_key,
)

logger = get_logger(__name__)

# Types a person may write through the API and admin; scrape types are written by the scraper.
MANUAL_LABEL_TYPES = (LabelType.MANUAL, LabelType.CAPTION, LabelType.TAG)
# Types machine labelers write, and so the ones a machine re-label replaces.
MACHINE_LABEL_TYPES = (LabelType.CAPTION, LabelType.TAG)


class InvalidLabel(ImagineerError):
    code = "invalid_label"


class DuplicateLabel(ConflictError):
    code = "duplicate_label"


class AlbumEmpty(ImagineerError):
    code = "album_empty"


class NothingToLabel(ImagineerError):
    code = "nothing_to_label"


class LabelingRunFailed(ImagineerError):
    code = "labeling_run_failed"


# --- Labels ------------------------------------------------------------------------------------


def clean_label_text(text: str, label_type: str) -> str:
    """Whitespace collapsed, tags lower case; InvalidLabel when empty or too long for its type."""
    cleaned = " ".join(str(text).split())
    if label_type == LabelType.TAG:
        cleaned = cleaned.lower()
    limit = TAG_TEXT_MAX if label_type == LabelType.TAG else LABEL_TEXT_MAX
    if not cleaned:
        raise InvalidLabel("The label text is empty.", code="empty_label")
    if len(cleaned) > limit:
        raise InvalidLabel(
            f"A {label_type} label is at most {limit} characters; this one has {len(cleaned)}.",
            details={"max_length": limit},
        )
    return cleaned


def _check_manual_type(label_type: str) -> None:
    if label_type not in MANUAL_LABEL_TYPES:
        raise InvalidLabel(
            f"label_type '{label_type}' is written by the system; people write {', '.join(MANUAL_LABEL_TYPES)}.",
            details={"accepted": list(MANUAL_LABEL_TYPES)},
        )


def _duplicate(image_id: int, label_type: str, text: str) -> DuplicateLabel:
    existing = Label.objects.filter(image_id=image_id, label_type=label_type, text_key=label_text_key(text)).first()
    return DuplicateLabel(
        f"Image #{image_id} already has the {label_type} label '{text[:80]}'.",
        details={"label_id": existing.pk if existing else None},
    )


def check_manual_label(image_id: int, *, text: str, label_type: str, label_id: int | None = None) -> str:
    """The cleaned text of a person's label; the error writing it would meet (type, text, duplicate) otherwise.

    `label_id`: the label being edited, which may keep its own text. Forms (admin) call this to
    show the refusal on the form; the writes below call it too, and the unique constraint settles a race.
    """
    _check_manual_type(label_type)
    cleaned = clean_label_text(text, label_type)
    clash = Label.objects.filter(image_id=image_id, label_type=label_type, text_key=label_text_key(cleaned))
    if clash.exclude(pk=label_id).exists():
        raise _duplicate(image_id, label_type, cleaned)
    return cleaned


def create_manual_label(
    image: Image, *, text: str, label_type: str = LabelType.MANUAL, confidence: float | None = None, user=None
) -> Label:
    """A label written by a person. The same (image, type, text) twice is a DuplicateLabel."""
    text = check_manual_label(image.pk, text=text, label_type=label_type)
    try:
        with transaction.atomic():
            return Label.objects.create(
                image=image,
                text=text,
                label_type=label_type,
                confidence=confidence,
                source=LabelSource.MANUAL,
                created_by=user if user is not None and user.is_authenticated else None,
            )
    except IntegrityError as exc:
        raise _duplicate(image.pk, label_type, text) from exc


def update_label(label: Label, *, user=None, **fields) -> Label:
    """Edit a label. An edited machine label becomes a person's label, so no run overwrites the fix."""
    label_type = fields.get("label_type", label.label_type)
    text = check_manual_label(
        label.image_id, text=fields.get("text", label.text), label_type=label_type, label_id=label.pk
    )
    label.text, label.label_type = text, label_type
    if "confidence" in fields:
        label.confidence = fields["confidence"]
    if label.source != LabelSource.MANUAL:
        label.source, label.source_model, label.run = LabelSource.MANUAL, "", None
        label.created_by = user if user is not None and user.is_authenticated else None
    try:
        with transaction.atomic():
            label.save()
    except IntegrityError as exc:
        raise _duplicate(label.image_id, label_type, text) from exc
    return label


def store_labeler_result(
    image_id: int, result: LabelResult, *, labeler: str, source_model: str, run: LabelingRun | None = None
) -> None:
    """Replace this labeler's captions and tags on the image, record the result and apply the rating.

    One transaction: a failure leaves the image exactly as it was. A text another source already
    wrote (a person's tag, say) is kept as it is rather than stored twice. The image's rating is the
    most severe of every labeler's latest one, so NudeNet's SAFE never clears Claude's EXPLICIT.
    """
    texts = ([(LabelType.CAPTION, result.caption)] if result.caption else []) + [
        (LabelType.TAG, tag) for tag in result.tags
    ]
    now = timezone.now()
    with transaction.atomic():
        Label.objects.filter(image_id=image_id, source=labeler, label_type__in=MACHINE_LABEL_TYPES).delete()
        Label.objects.bulk_create(
            [
                Label(
                    image_id=image_id,
                    text=text,
                    text_key=label_text_key(text),
                    label_type=label_type,
                    confidence=result.confidence,
                    source=labeler,
                    source_model=source_model[:100],
                    run=run,
                    created_at=now,
                )
                for label_type, text in texts
            ],
            ignore_conflicts=True,
        )
        LabelerResult.objects.update_or_create(
            image_id=image_id,
            labeler=labeler,
            defaults={
                "source_model": source_model[:100],
                "nsfw_rating": result.nsfw_rating,
                "confidence": result.confidence,
                "run": run,
                "labeled_at": now,
            },
        )
        ratings = set(LabelerResult.objects.filter(image_id=image_id).values_list("nsfw_rating", flat=True))
        severest = max((r for r in ratings if r in NSFW_SEVERITY), key=NSFW_SEVERITY.index)
        album_services.apply_machine_nsfw_rating(
            image_id, severest, labeler=f"{labeler}:{source_model}", labeling_run_id=run.pk if run else None
        )


# --- Labeling runs -----------------------------------------------------------------------------


def start_labeling_run(
    *,
    album: Album | None = None,
    image_ids: Sequence[int] | None = None,
    labeler: str | None = None,
    force: bool = False,
    user=None,
) -> LabelingRun:
    """Queue a run over an album's images (album order) or over image_ids.

    Images this labeler already labeled are skipped unless `force`. An empty album, or one with
    nothing left to label, is refused with a message that says which.
    """
    name = check_labeler(labeler or default_labeler_name())
    if (album is None) == (image_ids is None):
        raise ImagineerError("Give either an album or image_ids.")
    if album is not None:
        ids = list(album.album_images.order_by("sort_order", "id").values_list("image_id", flat=True))
        if not ids:
            raise AlbumEmpty(f"Album '{album.name}' has no images, so there is nothing to label.")
        done = LabelerResult.objects.filter(labeler=name, image__album_links__album=album)
        where = f"of album '{album.name}'"
    else:
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            raise ImagineerError("Give at least one image id.", code="no_images")
        album_services.existing_image_ids(ids)
        done = LabelerResult.objects.filter(labeler=name, image_id__in=ids)
        where = "given" if len(ids) > 1 else f"(image #{ids[0]})"
    already = set() if force else set(done.values_list("image_id", flat=True))
    todo = [pk for pk in ids if pk not in already]
    if not todo:
        raise NothingToLabel(
            f"All {len(ids)} image(s) {where} are already labeled by {name}; start it with force to label them again.",
            details={"labeler": name, "already_labeled": len(ids)},
        )
    with transaction.atomic():
        run = LabelingRun.objects.create(
            labeler=name,
            source_model=labeler_source_model(name),
            album=album,
            image_ids=todo,
            force=force,
            skipped_count=len(ids) - len(todo),
            progress_total=len(todo),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        jobs.enqueue_job(run)
    logger.info("labeling.run_queued", run_id=run.pk, labeler=name, images=len(todo), skipped=run.skipped_count)
    return run


def open_stored_image(image: Image) -> PILImage.Image:
    """The image's pixels, decoded from storage; LabelingFailed when the file is gone or unreadable."""
    try:
        with default_storage.open(image.file.name, "rb") as handle, PILImage.open(handle) as img:
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise LabelingFailed("The image's file is missing from storage.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise LabelingFailed("The image's file cannot be decoded (truncated or corrupt).") from exc


# Failures kept on the run (all are counted): bounded, so a run where every image fails (a revoked
# key, say) does not rewrite an ever-growing list once per image.
MAX_FAILURES_KEPT = 1000


def count_outcome(
    run, usage: LabelResult | LabelingFailed | None, *, failure: dict | None = None, succeeded: str = "succeeded_count"
) -> None:
    """Add one image's outcome and the tokens it cost (even an unusable answer's) to the job's row.

    For every job that labels images one by one (a labeling run; an NSFW check, whose successes are
    counted in `passed_count`).
    """
    counters = {"failed_count": F("failed_count") + 1} if failure else {succeeded: F(succeeded) + 1}
    if failure and len(run.failures) < MAX_FAILURES_KEPT:
        run.failures.append(failure)
        counters["failures"] = run.failures
    jobs.update_job(
        run,
        input_tokens=F("input_tokens") + getattr(usage, "input_tokens", 0),
        output_tokens=F("output_tokens") + getattr(usage, "output_tokens", 0),
        **counters,
    )


def run_labeling_run(run: LabelingRun) -> None:
    """Job body: label each image; a bad image is counted with its reason and the run goes on."""
    labeler = build_labeler(run.labeler)
    total = len(run.image_ids)
    first_error = ""
    for done, image_id in enumerate(run.image_ids, start=1):
        result = None
        try:
            image = Image.objects.filter(pk=image_id).first()
            if image is None:
                raise LabelingFailed("The image was deleted after the run was started.")
            result = labeler.label(open_stored_image(image))
            store_labeler_result(image_id, result, labeler=run.labeler, source_model=labeler.source_model, run=run)
        except (jobs.JobCancelled, jobs.JobLost):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded per image, the run goes on
            failed = isinstance(exc, LabelingFailed)
            message = str(exc) if failed else jobs.describe_failure(exc)
            first_error = first_error or message
            logger.warning("labeling.image_failed", run_id=run.pk, image_id=image_id, reason=message)
            # Tokens spent count whether the answer was unusable or storing it failed afterwards.
            count_outcome(run, exc if failed else result, failure={"image_id": image_id, "error": message})
        else:
            count_outcome(run, result)
        jobs.record_progress(run, done, total, f"{done}/{total} images")
    # update_job has read the counters back onto `run`.
    logger.info(
        "labeling.run_done",
        run_id=run.pk,
        succeeded=run.succeeded_count,
        failed=run.failed_count,
        # Not "*_tokens": the log redaction treats every key holding "token" as a secret.
        usage={"input": run.input_tokens, "output": run.output_tokens},
    )
    if total and run.succeeded_count == 0:
        raise LabelingRunFailed(f"All {total} image(s) failed. First error: {first_error}")
