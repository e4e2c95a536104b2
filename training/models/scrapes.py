from django.db import models

from imagineer.core.models import AbstractJob


class ScrapeJob(AbstractJob):
    """Crawl a site from one URL and keep its images (deduplicated, checked) in a new private album.

    `config` is the whole scraping config the job runs with (runtime-config defaults with the job's
    overrides, validated when the job was created), so a retry runs exactly as the first attempt.
    """

    name = models.CharField(max_length=200, help_text="Also the name of the album it makes.")
    start_url = models.URLField(max_length=2000)
    config = models.JSONField(default=dict, help_text="The scraping config in force for this job.")
    overrides = models.JSONField(default=dict, blank=True, help_text="What the job changed from the defaults.")
    album = models.ForeignKey(
        "albums.Album", null=True, blank=True, on_delete=models.SET_NULL, related_name="scrape_jobs"
    )
    pages_fetched = models.PositiveIntegerField(default=0, help_text="HTML pages that loaded.")
    pages_failed = models.PositiveIntegerField(default=0, help_text="Page requests that failed (reason in rejected).")
    images_discovered = models.PositiveIntegerField(default=0, help_text="Distinct image URLs found on the pages.")
    images_downloaded = models.PositiveIntegerField(default=0, help_text="Image URLs whose bytes arrived.")
    images_kept = models.PositiveIntegerField(default=0, help_text="Images stored in the job's album.")
    rejected = models.JSONField(default=dict, blank=True, help_text='URLs not used, by reason: {"too_small": 2, ...}')

    task_name = "training.tasks.scrape_site"
    retry_reset_fields = {
        "album": None,
        "pages_fetched": 0,
        "pages_failed": 0,
        "images_discovered": 0,
        "images_downloaded": 0,
        "images_kept": 0,
        "rejected": {},
    }

    class Meta(AbstractJob.Meta):
        verbose_name = "scrape job"

    def __str__(self) -> str:
        return f"Scrape #{self.pk} {self.name} ({self.status})"
