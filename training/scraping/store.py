"""Kept images into storage: the job's album, the images (private, source scraped) and their labels.

Everything a job stored is removed again when the job does not succeed (failed, cancelled, lost),
so a scrape either ends with its album or leaves nothing behind.
"""

from __future__ import annotations

from django.core.files.storage import default_storage

from albums import services as album_services
from albums.models import Album, AlbumSource, AlbumType, Image, ImageSource
from imagineer.core import jobs
from imagineer.core.logging import get_logger
from labeling.models import LABEL_TEXT_MAX, Label, LabelSource, LabelType
from training.models import ScrapeJob
from training.scraping.dedupe import phash_hex
from training.scraping.download import DownloadResult
from training.scraping.urls import file_name_of

logger = get_logger(__name__)


class ScrapeStore:
    def __init__(self, job: ScrapeJob):
        self.job = job
        self.album: Album | None = None
        self.image_ids: list[int] = []

    def _album(self) -> Album:
        # Made with the first kept image: a scrape that keeps nothing leaves no empty album.
        if self.album is None:
            self.album = Album.objects.create(
                name=self.job.name[:255],
                slug=album_services.unique_album_slug(self.job.name),
                description=f"Scraped from {self.job.start_url} by scrape job #{self.job.pk}.",
                album_type=AlbumType.SCRAPED,
                source_type=AlbumSource.SCRAPE,
                source_id=self.job.pk,
                is_public=False,
                created_by=self.job.created_by,
            )
            # Under this attempt's claim: a reaped job may be running again, and this one must not write over it.
            jobs.update_job(self.job, album=self.album)
        return self.album

    def keep(self, result: DownloadResult) -> bool:
        """Store the image at the album's end with its labels; False when the same bytes were stored meanwhile."""
        album = self._album()
        candidate = result.candidate
        with result.path.open("rb") as handle:
            image, created = album_services.store_image(
                handle,
                original_filename=file_name_of(candidate.url),
                user=self.job.created_by,
                album=album,
                source=ImageSource.SCRAPED,
                facts=result.facts,
                is_public=False,
                source_url=candidate.url,
                phash=phash_hex(result.phash),
            )
        if not created:
            # Another job stored these bytes between our duplicate check and now: not ours to show.
            album_services.remove_images_from_album(album, [image.pk])
            return False
        self.image_ids.append(image.pk)
        texts = {LabelType.ALT_TEXT: candidate.alt, LabelType.TITLE: candidate.title}
        texts[LabelType.HTML_CAPTION] = candidate.caption
        for label_type, text in texts.items():
            text = text.strip()[:LABEL_TEXT_MAX]
            if text:
                Label.objects.create(image=image, text=text, label_type=label_type, source=LabelSource.HTML_METADATA)
        return True

    def remove_all(self) -> int:
        """Delete what this job stored (images, their files and labels, the album). Returns the image count."""
        stored = Image.objects.filter(pk__in=self.image_ids)
        names = [name for pair in stored.values_list("file", "thumbnail") for name in pair if name]
        removed = stored.count()
        stored.delete()
        # Right after the rows, not on commit (albums.services.delete_image): a job runs outside
        # any transaction, and the files must be gone when the job reports that it ended.
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:  # the job's own error is the one to report; an orphan purge finds the file
                logger.warning("scrape.file_not_removed")
        if self.album is not None:
            # Deleting the album empties the job row's album column too (on_delete SET_NULL).
            Album.objects.filter(pk=self.album.pk).delete()
            self.album = None
            self.job.album = None
        self.image_ids.clear()
        if removed:
            logger.info("scrape.stored_images_removed", count=removed)
        return removed
