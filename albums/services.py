"""Albums and images as rows: storing files, thumbnails, album membership and order, flags, and
which images wait for an NSFW check before they are shown (labeling runs the check).

Files go through Django's storage API under generated names (`images/YYYY/MM/<uuid>.<ext>`), so a
client's file name never decides where bytes land and two files never overwrite each other. Whether
a file is an image we accept is albums.image_files' decision (inspect_image), never its name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Max, ProtectedError
from django.utils import timezone
from django.utils.text import get_valid_filename

from albums.image_files import ImageFacts, inspect_image, render_thumbnail
from albums.models import (
    CHECK_OPEN,
    NSFW_RATINGS,
    Album,
    AlbumImage,
    Image,
    ImageSource,
    NsfwCheck,
    NsfwFlagChange,
    NsfwFlagSource,
    ThumbnailJob,
)
from imagineer.core import jobs
from imagineer.core.errors import ConflictError, ImagineerError, NotFoundError
from imagineer.core.logging import get_logger
from imagineer.core.slugs import unique_slug

logger = get_logger(__name__)


# --- The NSFW check before an image becomes public ------------------------------------------------
#
# albums decides which images wait for a check and shows them to their owner and admins only
# (models.visible_images_q); labeling runs the check. labeling registers its requester here in its
# AppConfig.ready(), since albums never imports the apps above it. Without one (labeling not
# installed) nothing is marked pending: an image nobody would ever check must not wait forever.

CheckRequester = Callable[[list[int]], object]
_check_requester: CheckRequester | None = None


def register_check_requester(requester: CheckRequester | None) -> None:
    """Have `requester(image_ids)` queue the NSFW check of images just marked pending (after commit)."""
    global _check_requester
    _check_requester = requester


def nsfw_autocheck_on() -> bool:
    """Whether new public images wait for an NSFW check: IMAGINEER_NSFW_AUTOCHECK, and a checker installed."""
    return bool(settings.IMAGINEER_NSFW_AUTOCHECK) and _check_requester is not None


def new_image_check_fields(*, is_public: bool) -> dict[str, Any]:
    """The check fields a new image row starts with: pending when it is to be public and the autocheck is on."""
    if is_public and nsfw_autocheck_on():
        return {"nsfw_check": NsfwCheck.PENDING, "nsfw_check_attempts": 0, "nsfw_check_at": timezone.now()}
    return {}


# The ids collected by an open `nsfw_checks_together` block (None outside one).
_checks_together: ContextVar[list[int] | None] = ContextVar("nsfw_checks_together", default=None)


@contextmanager
def nsfw_checks_together() -> Iterator[None]:
    """Images stored inside the block ask for their NSFW check together, in one check job, when it ends.

    A generation batch's images are stored one by one; without this each would be a check job of
    its own (and a labeler loaded for one image). The block ends by asking even when it is left by
    an exception, so every image it stored is checked. Nested blocks leave the asking to the outer one.
    """
    if _checks_together.get() is not None:
        yield
        return
    collected: list[int] = []
    token = _checks_together.set(collected)
    try:
        yield
    finally:
        _checks_together.reset(token)
        request_nsfw_checks_on_commit(collected)


def request_nsfw_checks_on_commit(image_ids: Sequence[int]) -> None:
    """Once the transaction that marked these images pending commits, ask the checker to queue their check.

    A failure to ask (the broker unreachable, say) never undoes the storing that came before: the
    images stay pending and hidden, and the sweep (labeling.tasks.sweep_nsfw_checks) asks again.
    Inside a `nsfw_checks_together` block the ids wait for the block's end instead.
    """
    ids = list(dict.fromkeys(image_ids))
    requester = _check_requester
    if not ids or requester is None:
        return
    collected = _checks_together.get()
    if collected is not None:
        collected.extend(ids)
        return

    def request() -> None:
        try:
            requester(ids)
        except Exception as exc:  # noqa: BLE001 - the images wait for the sweep instead
            logger.error("image.check_not_requested", image_count=len(ids), exc_type=type(exc).__name__)

    transaction.on_commit(request)


def mark_nsfw_checks_pending(image_ids: Sequence[int]) -> int:
    """Put these images' check back to pending with fresh attempts ("check now", a failed check's retry).

    They are hidden from everyone but their owner and admins until the new check passes. The
    caller queues the check. Returns how many images there were.
    """
    return Image.objects.filter(pk__in=list(image_ids)).update(
        nsfw_check=NsfwCheck.PENDING,
        nsfw_check_attempts=0,
        nsfw_check_at=timezone.now(),
        nsfw_check_error="",
        updated_at=timezone.now(),
    )


def record_nsfw_checks_queued(image_ids: Sequence[int]) -> int:
    """Count one more check queued for each of these pending images (the sweep gives up after a few)."""
    now = timezone.now()
    return Image.objects.filter(pk__in=list(image_ids), nsfw_check=NsfwCheck.PENDING).update(
        nsfw_check_attempts=F("nsfw_check_attempts") + 1, nsfw_check_at=now, updated_at=now
    )


def end_nsfw_checks(image_ids: Sequence[int], *, passed: bool, reason: str = "") -> int:
    """End the check of these images (pending or failed ones): passed, or failed with `reason` for admins.

    A passed image shows to everyone when it is public and not NSFW: the rating was stored before.
    """
    now = timezone.now()
    return Image.objects.filter(pk__in=list(image_ids), nsfw_check__in=CHECK_OPEN).update(
        nsfw_check=NsfwCheck.PASSED if passed else NsfwCheck.FAILED,
        nsfw_check_at=now,
        nsfw_check_error="" if passed else reason[:4000],
        updated_at=now,
    )


def _check_publicised(image_ids: Sequence[int]) -> list[int]:
    """Mark pending the images of `image_ids` about to be made public that never needed a check.

    An image stored private skipped the check; switched to public while the autocheck is on, it
    waits for one like a new image (nothing becomes public unchecked). Returns their ids; the
    caller requests their check once committed.
    """
    if not nsfw_autocheck_on():
        return []
    ids = list(
        Image.objects.filter(pk__in=list(image_ids), is_public=False, nsfw_check=NsfwCheck.NOT_REQUIRED).values_list(
            "pk", flat=True
        )
    )
    if ids:
        Image.objects.filter(pk__in=ids).update(**new_image_check_fields(is_public=True))
    return ids


class ImageIdsNotFound(ImagineerError):
    code = "unknown_images"


def _storage_name(folder: str, extension: str) -> str:
    now = timezone.now()
    return f"{folder}/{now:%Y/%m}/{uuid.uuid4().hex}.{extension}"


def build_thumbnail(image: Image) -> None:
    """(Re)write the image's thumbnail from its stored file and point the row at it."""
    old_name = image.thumbnail.name
    with default_storage.open(image.file.name, "rb") as original:
        data = render_thumbnail(original)
    new_name = default_storage.save(_storage_name("thumbnails", "webp"), ContentFile(data))
    Image.objects.filter(pk=image.pk).update(thumbnail=new_name, updated_at=timezone.now())
    image.thumbnail.name = new_name
    if old_name and old_name != new_name:
        default_storage.delete(old_name)


def store_image(
    fileobj: IO[bytes],
    *,
    original_filename: str = "",
    user=None,
    album: Album | None = None,
    source: str = ImageSource.UPLOADED,
    facts: ImageFacts | None = None,
    **fields: Any,
) -> tuple[Image, bool]:
    """Validate and store an image file. Returns (image, created).

    An identical file (same SHA-256) already stored is returned instead of stored again
    (created=False); it is still added to `album`. On any failure no file and no row remain.
    `facts` may be given for bytes this process encoded itself (see facts_for_generated).
    """
    display_name = (
        get_valid_filename(original_filename.replace("\\", "/").rsplit("/", 1)[-1]) if original_filename else ""
    )
    if facts is None:
        facts = inspect_image(fileobj, name=display_name or "file", with_thumbnail=True)
    existing = Image.objects.filter(sha256=facts.sha256).first()
    if existing is not None:
        if album is not None:
            add_images_to_album(album, [existing.pk], user=user)
        logger.info("image.duplicate", image_id=existing.pk)
        return existing, False

    if fields.get("is_nsfw"):
        fields["nsfw_flag_source"] = NsfwFlagSource.MANUAL  # the uploader said so: a manual flag
    fields.update(new_image_check_fields(is_public=fields.get("is_public", True)))  # public unless told
    written: list[str] = []
    try:
        thumb_name = default_storage.save(_storage_name("thumbnails", "webp"), ContentFile(facts.thumbnail))
        written.append(thumb_name)
        # A Django upload spooled to disk is moved into place rather than copied.
        content = fileobj if isinstance(fileobj, File) else File(fileobj)
        file_name = default_storage.save(_storage_name("images", facts.extension), content)
        written.append(file_name)
        with transaction.atomic():
            image = Image.objects.create(
                file=file_name,
                thumbnail=thumb_name,
                sha256=facts.sha256,
                width=facts.width,
                height=facts.height,
                format=facts.format,
                file_size=facts.size,
                original_filename=display_name[:255],
                source=source,
                created_by=user if user is not None and user.is_authenticated else None,
                **fields,
            )
            if image.is_nsfw:
                NsfwFlagChange.objects.create(
                    image=image, is_nsfw=True, source=NsfwFlagSource.MANUAL, changed_by=image.created_by
                )
            if album is not None:
                add_images_to_album(album, [image.pk], user=user)
            if image.nsfw_check == NsfwCheck.PENDING:
                request_nsfw_checks_on_commit([image.pk])  # dropped with the row if this rolls back
    except IntegrityError:
        # The same bytes were stored by a concurrent request between our check and our insert.
        _delete_files(written)
        existing = Image.objects.get(sha256=facts.sha256)
        if album is not None:
            add_images_to_album(album, [existing.pk], user=user)
        return existing, False
    except BaseException:
        _delete_files(written)
        raise
    logger.info("image.stored", image_id=image.pk, format=facts.format, size=facts.size)
    return image, True


def _delete_files(names: Iterable[str]) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


def delete_image(image: Image) -> None:
    """Delete the row (album links cascade) and, once committed, its files."""
    names = [image.file.name, image.thumbnail.name]
    image.delete()
    transaction.on_commit(lambda: _delete_files(names))


def existing_image_ids(image_ids: Sequence[int]) -> set[int]:
    found = set(Image.objects.filter(pk__in=image_ids).values_list("pk", flat=True))
    missing = sorted(set(image_ids) - found)
    if missing:
        raise ImageIdsNotFound(
            f"{len(missing)} image id(s) do not exist: {missing[:20]}.", details={"missing_ids": missing}
        )
    return found


class AlbumIsTemplate(ImagineerError):
    code = "album_is_template"


class AlbumInUse(ConflictError):
    code = "album_in_use"


def delete_album(album: Album) -> None:
    """Delete the album; its images stay. Refused while rows that must keep it refer to it.

    Set runs keep the template they were made from (PROTECT): deleting such a template is a
    conflict the operator resolves by deleting those runs first, not a server error.
    """
    try:
        album.delete()
    except ProtectedError as exc:
        by_kind: dict[str, int] = {}
        for obj in exc.protected_objects:
            kind = str(obj._meta.verbose_name_plural)
            by_kind[kind] = by_kind.get(kind, 0) + 1
        named = ", ".join(f"{count} {kind}" for kind, count in sorted(by_kind.items()))
        raise AlbumInUse(
            f"'{album.name}' cannot be deleted: {named} refer to it. Delete those first.",
            details={"referenced_by": by_kind},
        ) from exc


@transaction.atomic
def add_images_to_album(album: Album, image_ids: Sequence[int], *, user=None) -> int:
    """Append images to the album's end, in the given order; images already in it are skipped."""
    if album.is_set_template:
        raise AlbumIsTemplate(f"'{album.name}' is a set template: templates never collect images.")
    existing_image_ids(image_ids)
    already = set(album.album_images.filter(image_id__in=image_ids).values_list("image_id", flat=True))
    new_ids = [pk for pk in dict.fromkeys(image_ids) if pk not in already]
    start = (album.album_images.aggregate(m=Max("sort_order"))["m"] or 0) + 1
    added_by = user if user is not None and user.is_authenticated else None
    AlbumImage.objects.bulk_create(
        [AlbumImage(album=album, image_id=pk, sort_order=start + i, added_by=added_by) for i, pk in enumerate(new_ids)]
    )
    if new_ids:
        Album.objects.filter(pk=album.pk).update(updated_at=timezone.now())
    return len(new_ids)


@transaction.atomic
def remove_images_from_album(album: Album, image_ids: Sequence[int]) -> int:
    """Remove images from the album (the images themselves stay). Ids not in it are an error."""
    linked = set(album.album_images.filter(image_id__in=image_ids).values_list("image_id", flat=True))
    missing = sorted(set(image_ids) - linked)
    if missing:
        raise ImageIdsNotFound(
            f"{len(missing)} image id(s) are not in this album: {missing[:20]}.", details={"missing_ids": missing}
        )
    removed, _ = album.album_images.filter(image_id__in=image_ids).delete()
    return removed


@transaction.atomic
def reorder_album(album: Album, image_ids: Sequence[int]) -> None:
    """Put the listed images in the listed order, in the positions they occupy now.

    Sending every image of the album reorders the whole album; sending a few reorders just those
    among themselves and leaves the others where they are.
    """
    if len(set(image_ids)) != len(image_ids):
        raise ImagineerError("image_ids contains duplicates.", code="duplicate_ids")
    links = {link.image_id: link for link in album.album_images.select_for_update().filter(image_id__in=image_ids)}
    missing = sorted(set(image_ids) - set(links))
    if missing:
        raise ImageIdsNotFound(
            f"{len(missing)} image id(s) are not in this album: {missing[:20]}.", details={"missing_ids": missing}
        )
    # The slots these images occupy now, in album order, re-filled in the requested order.
    slots = sorted((link.sort_order, link.pk) for link in links.values())
    for (sort_order, _), image_id in zip(slots, image_ids, strict=False):
        links[image_id].sort_order = sort_order
    # Equal sort_order values (from older rows) are tie-broken by id; make slots distinct first.
    if len({s for s, _ in slots}) != len(slots):
        renumber_album(album)
        return reorder_album(album, image_ids)
    AlbumImage.objects.bulk_update(list(links.values()), ["sort_order"])
    Album.objects.filter(pk=album.pk).update(updated_at=timezone.now())


def renumber_album(album: Album) -> None:
    links = list(album.album_images.order_by("sort_order", "id"))
    for position, link in enumerate(links, start=1):
        link.sort_order = position
    AlbumImage.objects.bulk_update(links, ["sort_order"])


@transaction.atomic
def set_image_flags(
    image_ids: Sequence[int], *, is_nsfw: bool | None = None, is_public: bool | None = None, user=None
) -> int:
    """Set is_nsfw and/or is_public on many images at once (all or none).

    An is_nsfw set here is a manual decision: it is recorded (who, when) and machine ratings no
    longer change it (see apply_machine_nsfw_rating). A private image that never needed an NSFW
    check and is made public here waits for one first while the autocheck is on.
    """
    existing_image_ids(image_ids)
    changes: dict[str, Any] = {}
    if is_nsfw is not None:
        changes["is_nsfw"] = is_nsfw
        changes["nsfw_flag_source"] = NsfwFlagSource.MANUAL
    if is_public is not None:
        changes["is_public"] = is_public
    if not changes:
        raise ImagineerError("Nothing to change: give is_nsfw and/or is_public.", code="nothing_to_change")
    if is_public:
        request_nsfw_checks_on_commit(_check_publicised(image_ids))
    if is_nsfw is not None:
        # Recorded where the value changes, or where a machine's value becomes an admin's decision.
        decided = (
            Image.objects.filter(pk__in=image_ids)
            .exclude(is_nsfw=is_nsfw, nsfw_flag_source=NsfwFlagSource.MANUAL)
            .values_list("pk", flat=True)
        )
        changed_by = user if user is not None and user.is_authenticated else None
        NsfwFlagChange.objects.bulk_create(
            [
                NsfwFlagChange(image_id=pk, is_nsfw=is_nsfw, source=NsfwFlagSource.MANUAL, changed_by=changed_by)
                for pk in decided
            ]
        )
    return Image.objects.filter(pk__in=image_ids).update(**changes, updated_at=timezone.now())


@transaction.atomic
def update_image(image: Image, *, user=None, **fields: Any) -> Image:
    """Change an image's editable fields; is_nsfw (a manual flag) and is_public go through set_image_flags."""
    is_nsfw, is_public = fields.pop("is_nsfw", None), fields.pop("is_public", None)
    if is_nsfw is not None or is_public is not None:
        set_image_flags([image.pk], is_nsfw=is_nsfw, is_public=is_public, user=user)
    if fields:
        for name, value in fields.items():
            setattr(image, name, value)
        image.save(update_fields=[*fields, "updated_at"])
    image.refresh_from_db()
    return image


@transaction.atomic
def apply_machine_nsfw_rating(image_id: int, rating: str, *, labeler: str, labeling_run_id: int | None = None) -> bool:
    """Store the image's machine rating; is_nsfw follows it unless an admin set the flag by hand.

    `rating` is the most severe of the labelers' latest ratings (labeling decides it), so one
    labeler's SAFE never clears another's EXPLICIT. ADULT and EXPLICIT mean NSFW; SAFE and
    SUGGESTIVE do not. Returns whether is_nsfw changed (and was recorded). The row is locked
    meanwhile, so an admin's flag set a moment ago is never overwritten.
    """
    row = Image.objects.select_for_update().filter(pk=image_id).values("is_nsfw", "nsfw_flag_source").first()
    if row is None:
        return False
    wanted = rating in NSFW_RATINGS
    fields: dict[str, Any] = {"nsfw_rating": rating, "updated_at": timezone.now()}
    manual = row["nsfw_flag_source"] == NsfwFlagSource.MANUAL
    if not manual:
        fields.update(is_nsfw=wanted, nsfw_flag_source=NsfwFlagSource.MACHINE)
    Image.objects.filter(pk=image_id).update(**fields)
    changed = not manual and row["is_nsfw"] != wanted
    if changed:
        NsfwFlagChange.objects.create(
            image_id=image_id,
            is_nsfw=wanted,
            source=NsfwFlagSource.MACHINE,
            labeler=labeler[:100],
            rating=rating,
            labeling_run_id=labeling_run_id,
        )
    return changed


@transaction.atomic
def release_manual_nsfw_flags(image_ids: Sequence[int]) -> int:
    """Let machine ratings decide is_nsfw again; the latest rating, if any, applies at once."""
    existing_image_ids(image_ids)
    released = list(
        Image.objects.filter(pk__in=image_ids, nsfw_flag_source=NsfwFlagSource.MANUAL).values_list("pk", "nsfw_rating")
    )
    Image.objects.filter(pk__in=[pk for pk, _ in released]).update(
        nsfw_flag_source=NsfwFlagSource.UNSET, updated_at=timezone.now()
    )
    for pk, rating in released:
        if rating:
            apply_machine_nsfw_rating(pk, rating, labeler="latest rating (manual flag released)")
    return len(released)


def unique_album_slug(name: str) -> str:
    return unique_slug(Album.objects.all(), name, fallback="album", max_length=255)


# --- Thumbnail jobs ---------------------------------------------------------------------------


def start_thumbnail_rebuild(image_ids: Sequence[int], *, user=None) -> ThumbnailJob:
    """Queue a job that rebuilds the thumbnails of these images."""
    ids = list(dict.fromkeys(image_ids))
    existing_image_ids(ids)
    with transaction.atomic():
        job = ThumbnailJob.objects.create(
            image_ids=ids, progress_total=len(ids), created_by=user if user and user.is_authenticated else None
        )
        jobs.enqueue_job(job)
    return job


def rebuild_thumbnails(job: ThumbnailJob) -> None:
    """Job body: rebuild each thumbnail; one bad image is recorded and never stops the rest."""
    images = Image.objects.in_bulk(job.image_ids)
    total = len(job.image_ids)
    for done, image_id in enumerate(job.image_ids, start=1):
        image = images.get(image_id)
        try:
            if image is None:
                raise NotFoundError("the image no longer exists")
            build_thumbnail(image)
        except Exception as exc:  # noqa: BLE001 - recorded per image, the run goes on
            logger.warning("thumbnail.failed", image_id=image_id, exc_type=type(exc).__name__)
            job.failures.append({"image_id": image_id, "error": jobs.describe_failure(exc)})
            jobs.update_job(job, failed_count=F("failed_count") + 1, failures=job.failures)
        else:
            jobs.update_job(job, rebuilt_count=F("rebuilt_count") + 1)
        jobs.record_progress(job, done, total, f"{done}/{total} thumbnails")
