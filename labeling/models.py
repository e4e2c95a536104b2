"""Labels (captions, tags, manual and scrape-derived text on images), labeling runs, labeler results."""

import hashlib

from django.conf import settings
from django.db import models

from albums.models import Album, Image, NsfwRating
from imagineer.core.models import AbstractJob

LABEL_TEXT_MAX = 1000  # captions are one paragraph; CLIP reads 77 tokens of it anyway
TAG_TEXT_MAX = 100


class LabelType(models.TextChoices):
    CAPTION = "caption", "Caption"
    TAG = "tag", "Tag"
    MANUAL = "manual", "Manual"
    # Written by the scraper from the page an image came from.
    ALT_TEXT = "alt_text", "Alt text"
    TITLE = "title", "Title"
    HTML_CAPTION = "html_caption", "HTML caption"


# Types that count as tags in tag statistics (top tags, tag clouds).
TAG_TYPES = (LabelType.TAG, LabelType.MANUAL)
SCRAPE_TYPES = (LabelType.ALT_TEXT, LabelType.TITLE, LabelType.HTML_CAPTION)


class LabelSource(models.TextChoices):
    """Who wrote a label. Machine runs replace only their own labels; `manual` ones are a person's."""

    MANUAL = "manual", "A person"
    CLAUDE = "claude", "Claude"
    NUDENET = "nudenet", "NudeNet (local)"
    HTML_METADATA = "html_metadata", "Scraped page"
    LEGACY_IMPORT = "legacy_import", "Legacy import (caption files)"


def label_text_key(text: str) -> str:
    """The key that makes (image, type, text) unique: a digest, since a long text cannot be in a btree index."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Label(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labels")
    text = models.TextField(max_length=LABEL_TEXT_MAX)
    text_key = models.CharField(max_length=64, editable=False, help_text="SHA-256 of text.")
    label_type = models.CharField(max_length=16, choices=LabelType.choices, default=LabelType.MANUAL)
    confidence = models.FloatField(null=True, blank=True, help_text="0–1, when the labeler gives one.")
    source = models.CharField(max_length=16, choices=LabelSource.choices, default=LabelSource.MANUAL)
    source_model = models.CharField(max_length=100, blank=True, help_text="e.g. the Claude model that wrote it.")
    run = models.ForeignKey(
        "labeling.LabelingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="labels"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="labels"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "label_type", "text_key"], name="unique_image_label"),
        ]
        indexes = [
            # Per-image counts and "which images have a caption/manual label" (analytics, training).
            models.Index(fields=["image", "label_type"], name="label_image_type"),
            models.Index(fields=["image", "source"], name="label_image_source"),
            models.Index(fields=["label_type", "created_at"], name="label_type_created"),
        ]

    def __str__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:60] + "…"
        return f"{self.get_label_type_display()}: {text}"

    def save(self, *args, **kwargs):
        self.text_key = label_text_key(self.text)
        super().save(*args, **kwargs)


class LabelerName(models.TextChoices):
    CLAUDE = "claude", "Claude (Anthropic API)"
    NUDENET = "nudenet", "NudeNet local NSFW detector"


class LabelingRun(AbstractJob):
    """Label the images of an album, or a list of images, with one labeler."""

    labeler = models.CharField(max_length=16, choices=LabelerName.choices)
    source_model = models.CharField(max_length=100, blank=True, help_text="The labeler's model, as configured.")
    album = models.ForeignKey(Album, null=True, blank=True, on_delete=models.SET_NULL, related_name="labeling_runs")
    image_ids = models.JSONField(default=list, help_text="The images to label, fixed when the run was started.")
    force = models.BooleanField(default=False, help_text="Label again images this labeler already labeled.")
    skipped_count = models.PositiveIntegerField(default=0, help_text="Already labeled (not forced) when started.")
    succeeded_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True, help_text='[{"image_id": ..., "error": ...}]')
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)

    task_name = "labeling.tasks.run_labeling_run"
    retry_reset_fields = {
        "succeeded_count": 0,
        "failed_count": 0,
        "failures": [],
        "input_tokens": 0,
        "output_tokens": 0,
    }

    class Meta(AbstractJob.Meta):
        verbose_name = "labeling run"


class NsfwCheckJob(AbstractJob):
    """The NSFW check of images stored together (a generation job's image, an upload, an import batch).

    Queued after they were stored, when they are to be public and the autocheck is on
    (labeling.autocheck). Each image ends its check passed or failed as the job reaches it; the
    labels and rating the labeler gives are stored as a labeling run would store them.
    """

    images = models.ManyToManyField(Image, related_name="nsfw_check_jobs")
    labeler = models.CharField(max_length=16, choices=LabelerName.choices)
    source_model = models.CharField(max_length=100, blank=True, help_text="The labeler's model, as configured.")
    passed_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True, help_text='[{"image_id": ..., "error": ...}]')
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)

    task_name = "labeling.tasks.run_nsfw_check"
    retry_reset_fields = {"passed_count": 0, "failed_count": 0, "failures": [], "input_tokens": 0, "output_tokens": 0}

    class Meta(AbstractJob.Meta):
        verbose_name = "NSFW check"


class LabelerResult(models.Model):
    """The last time a labeler labeled an image, and the rating it gave: what `force` is about."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labeler_results")
    labeler = models.CharField(max_length=16, choices=LabelerName.choices)
    source_model = models.CharField(max_length=100, blank=True)
    nsfw_rating = models.CharField(max_length=10, choices=NsfwRating.choices, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    run = models.ForeignKey(LabelingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    labeled_at = models.DateTimeField()

    class Meta:
        ordering = ["-labeled_at"]
        constraints = [models.UniqueConstraint(fields=["image", "labeler"], name="one_result_per_labeler")]

    def __str__(self) -> str:
        return f"Image #{self.image_id} by {self.labeler}: {self.nsfw_rating or '-'}"


# --- The label-text tally (labeling/tally.py maintains it; analytics reads it) ---------------


class LabelTextTally(models.Model):
    """Per label text and scope: how many labels carry it, and how many of those are on hidden images.

    Hidden = not public, NSFW, or not cleared by the NSFW check (albums.models.public_images_q):
    what a non-admin's analytics leave out, so their count is `total - hidden`. Scope is a label
    type, or ALL (every type: distinct texts) or TAGS (the TAG_TYPES: top tags). Written only by
    labeling.tally (compaction and rebuild); never edit rows.
    """

    ALL = "*all"
    TAGS = "*tags"

    text_key = models.CharField(max_length=64, help_text="SHA-256 of text, as on Label.")
    scope = models.CharField(max_length=16, help_text=f"A label type, {ALL} or {TAGS}.")
    text = models.TextField(max_length=LABEL_TEXT_MAX)
    total = models.BigIntegerField(default=0, help_text="Labels with this text in this scope.")
    hidden = models.BigIntegerField(default=0, help_text="Of which on private or NSFW images.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["text_key", "scope"], name="unique_label_text_tally")]
        indexes = [
            # The counts of a scope read from this index alone (an index-only scan on PostgreSQL).
            models.Index(fields=["scope", "total", "hidden"], name="label_tally_scope_counts"),
            # Rows whose last label went: the compaction purges them through this (usually empty) index.
            models.Index(fields=["id"], condition=models.Q(total=0), name="label_tally_emptied"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}: {self.text[:60]} ({self.total}, {self.hidden} hidden)"


class LabelTextDelta(models.Model):
    """One label added (+1) or removed (-1), appended by database triggers on labeling_label.

    Append-only, so concurrent writers never lock a shared row; compaction folds the rows into
    LabelTextTally. The image's visibility is read at compaction time, not here (see tally.py).
    """

    text_key = models.CharField(max_length=64)
    label_type = models.CharField(max_length=16)
    text = models.TextField()
    image_id = models.BigIntegerField()  # no foreign key: the image may be gone when this is folded
    delta = models.SmallIntegerField()

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.label_type} {self.text[:60]} on image #{self.image_id}"


class LabelTallyImageChange(models.Model):
    """An image whose visibility may differ from what the tally counted: appended by triggers on
    albums_image when one is created hidden, changes is_public/is_nsfw/nsfw_check so that it turns
    hidden or visible, or is deleted while hidden."""

    image_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"Image #{self.image_id} changed visibility"


class LabelTallyHiddenImage(models.Model):
    """The images LabelTextTally counts as hidden, as of the last compaction."""

    image_id = models.BigIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"Image #{self.image_id} counted hidden"
