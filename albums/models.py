from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from imagineer.core.models import AbstractJob
from imagineer.core.permissions import is_admin


class ImageSource(models.TextChoices):
    GENERATED = "generated", "Generated"
    UPLOADED = "uploaded", "Uploaded"
    SCRAPED = "scraped", "Scraped"
    LEGACY = "legacy", "Legacy import"


class NsfwCheck(models.TextChoices):
    """Where an image stands with the NSFW check it must pass before anyone but its owner sees it.

    New images that are to be public start `pending` while the autocheck is on
    (IMAGINEER_NSFW_AUTOCHECK; labeling runs the check). An image the labeler rates NSFW still ends
    `passed`: it was checked, and is_nsfw hides it.
    """

    NOT_REQUIRED = "not_required", "Not required"  # private when stored, stored before the check, or autocheck off
    PENDING = "pending", "Not checked yet"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Check failed"


# The check states that let a public image be shown to everyone.
CHECK_CLEARED = (NsfwCheck.NOT_REQUIRED.value, NsfwCheck.PASSED.value)
# The states the check still has to settle: what the sweep and the admin's "not checked" filter read.
CHECK_OPEN = (NsfwCheck.PENDING.value, NsfwCheck.FAILED.value)


def public_images_q(prefix: str = "") -> Q:
    """The images everyone may see: public, not NSFW, and cleared by the NSFW check (or never needing it)."""
    return Q(**{f"{prefix}is_public": True, f"{prefix}is_nsfw": False, f"{prefix}nsfw_check__in": list(CHECK_CLEARED)})


# What anonymous and non-admin users may see of an image: public, not NSFW and not waiting for (or
# failed) its NSFW check, plus, for a signed-in user, the images they made. One definition, used by
# every list, detail, count, album page, file and thumbnail.
def visible_images_q(user, prefix: str = "") -> Q | None:
    """The condition on images `user` may see (None: everything), for queries through `prefix`."""
    if is_admin(user):
        return None
    condition = public_images_q(prefix)
    if user is not None and user.is_authenticated:
        # People see what they made themselves, private and unchecked included; NSFW stays admin-only.
        condition |= Q(**{f"{prefix}created_by": user, f"{prefix}is_nsfw": False})
    return condition


class NsfwRating(models.TextChoices):
    """The four ratings every labeler answers in; ADULT and EXPLICIT make an image NSFW."""

    SAFE = "SAFE", "Safe"
    SUGGESTIVE = "SUGGESTIVE", "Suggestive"
    ADULT = "ADULT", "Adult"
    EXPLICIT = "EXPLICIT", "Explicit"


NSFW_RATINGS = frozenset({NsfwRating.ADULT, NsfwRating.EXPLICIT})
# Least to most severe: with several labelers, an image's rating is the most severe of theirs.
NSFW_SEVERITY = (NsfwRating.SAFE, NsfwRating.SUGGESTIVE, NsfwRating.ADULT, NsfwRating.EXPLICIT)


class NsfwFlagSource(models.TextChoices):
    UNSET = "", "Never set"
    MANUAL = "manual", "Set by an admin"
    MACHINE = "machine", "Set by a labeler"


class ImageQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ImageQuerySet":
        condition = visible_images_q(user)
        return self if condition is None else self.filter(condition)


class Image(models.Model):
    file = models.FileField(max_length=255)
    thumbnail = models.FileField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the stored file's bytes.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8, help_text="Decoded format: JPEG, PNG, WEBP or GIF.")
    file_size = models.PositiveBigIntegerField(default=0)
    original_filename = models.CharField(max_length=255, blank=True, help_text="Name the file had when it arrived.")

    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    steps = models.PositiveIntegerField(null=True, blank=True)
    guidance_scale = models.FloatField(null=True, blank=True)
    model = models.CharField(max_length=255, blank=True)
    loras = models.JSONField(default=list, blank=True, help_text='[{"name": ..., "weight": ...}]')

    is_nsfw = models.BooleanField(default=False)
    # Who decided is_nsfw last. A manual decision wins: machine ratings never change it afterwards.
    nsfw_flag_source = models.CharField(max_length=8, choices=NsfwFlagSource.choices, blank=True, default="")
    nsfw_rating = models.CharField(
        max_length=10,
        choices=NsfwRating.choices,
        blank=True,
        help_text="The most severe of the labelers' latest ratings, if any.",
    )
    is_public = models.BooleanField(default=True)
    # The NSFW check a public image passes before anyone but its owner and admins sees it
    # (albums.services starts it, labeling runs it; docs/LABELING.md).
    nsfw_check = models.CharField(
        max_length=16,
        choices=NsfwCheck.choices,
        default=NsfwCheck.NOT_REQUIRED,
        help_text="Pending or failed: shown to its owner and admins only, whatever is_public says.",
    )
    nsfw_check_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Check jobs queued for it since it last became pending."
    )
    nsfw_check_at = models.DateTimeField(
        null=True, blank=True, help_text="When the check state last changed: queued (pending) or ended."
    )
    nsfw_check_error = models.TextField(blank=True, help_text="Why the check failed, for admins.")
    source = models.CharField(max_length=16, choices=ImageSource.choices, default=ImageSource.UPLOADED)
    source_url = models.URLField(max_length=2000, blank=True, help_text="Where a scraped image was downloaded from.")
    # 64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits: the scraper compares new images
    # with stored ones by Hamming distance. Set on scraped images; null on the others.
    phash = models.CharField(max_length=16, null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    # A default, not auto_now_add: imports give the time an image was made, years before it arrived.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Both orderings end in -id (the model's ordering): a page is then read straight off
            # the index, without sorting every visible row first.
            # The anonymous list: exactly the images everyone may see, newest first. Partial, so the
            # condition's three columns (one of them an IN) cost no range scans and no sort.
            models.Index(fields=["-created_at", "-id"], condition=public_images_q(), name="image_visible_newest"),
            # The few images whose check is not settled: the sweep and the admin's filter.
            models.Index(
                fields=["nsfw_check", "nsfw_check_at"], condition=Q(nsfw_check__in=CHECK_OPEN), name="image_check_open"
            ),
            models.Index(fields=["-created_at", "-id"], name="image_newest"),
            models.Index(fields=["source", "-created_at"], name="image_source_recent"),
        ]

    def __str__(self) -> str:
        return f"Image #{self.pk} ({self.format} {self.width}x{self.height})"

    @property
    def is_visible_to_everyone(self) -> bool:
        """public_images_q for this row: what a shared cache may keep."""
        return self.is_public and not self.is_nsfw and self.nsfw_check in CHECK_CLEARED


class NsfwFlagChange(models.Model):
    """One change of an image's is_nsfw: to what, by whom or what, and when."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="nsfw_changes")
    is_nsfw = models.BooleanField(help_text="The value it changed to.")
    source = models.CharField(max_length=8, choices=NsfwFlagSource.choices[1:])
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labeler = models.CharField(max_length=100, blank=True, help_text="The labeler (and model) whose rating it was.")
    rating = models.CharField(max_length=10, choices=NsfwRating.choices, blank=True)
    labeling_run_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["image", "-created_at"], name="nsfw_change_image_recent")]

    def __str__(self) -> str:
        who = self.changed_by or self.labeler or self.get_source_display()
        return f"Image #{self.image_id} → {'NSFW' if self.is_nsfw else 'not NSFW'} by {who}"


class AlbumType(models.TextChoices):
    MANUAL = "manual", "Manual"
    BATCH = "batch", "Batch"
    SET = "set", "Set"
    COLLECTION = "collection", "Collection"
    SCRAPED = "scraped", "Scraped"
    SINGLES = "singles", "Legacy singles"
    DECK = "deck", "Deck"
    ZODIAC = "zodiac", "Zodiac"
    LORA_EXPERIMENT = "lora-experiment", "LoRA experiment"
    REFERENCE_PACK = "reference-pack", "Reference pack"


class AlbumSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    BATCH_GENERATION = "batch_generation", "Batch generation"
    SCRAPE = "scrape", "Scrape"
    LEGACY_IMPORT = "legacy_import", "Legacy import"


class AlbumQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AlbumQuerySet":
        return self if is_admin(user) else self.filter(is_public=True)


class Album(models.Model):
    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    album_type = models.CharField(max_length=32, choices=AlbumType.choices, default=AlbumType.MANUAL)
    is_public = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="albums"
    )
    # Provenance: what made this album (a batch run, a scrape job, a legacy import ...).
    source_type = models.CharField(max_length=32, choices=AlbumSource.choices, default=AlbumSource.MANUAL)
    source_id = models.BigIntegerField(null=True, blank=True)
    images = models.ManyToManyField(Image, through="AlbumImage", related_name="albums")

    # Set template (an input recipe, never an output album: it collects no generated images).
    is_set_template = models.BooleanField(default=False, db_index=True)
    template_items = models.JSONField(default=list, blank=True, help_text="The CSV rows: a list of objects.")
    base_prompt = models.TextField(blank=True)
    prompt_template = models.TextField(blank=True, help_text="{column} placeholders are filled from each row.")
    style_suffix = models.TextField(blank=True)
    example_theme = models.CharField(max_length=500, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    negative_prompt = models.TextField(blank=True)
    loras = models.JSONField(default=list, blank=True, help_text='[{"lora": slug or id, "weight": w}]')
    default_model = models.ForeignKey(
        "generation.DiffusionModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="set_templates"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlbumQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source_type", "source_id"], name="album_source")]

    def __str__(self) -> str:
        return self.name


class AlbumImage(models.Model):
    album = models.ForeignKey(Album, on_delete=models.CASCADE, related_name="album_images")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="album_links")
    sort_order = models.IntegerField(default=0)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [models.UniqueConstraint(fields=["album", "image"], name="unique_album_image")]
        indexes = [models.Index(fields=["album", "sort_order"], name="album_image_order")]

    def __str__(self) -> str:
        return f"{self.album} · image #{self.image_id}"


class ThumbnailJob(AbstractJob):
    """(Re)build the thumbnails of a set of images."""

    image_ids = models.JSONField(default=list)
    rebuilt_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True, help_text='[{"image_id": ..., "error": ...}]')

    task_name = "albums.tasks.rebuild_thumbnails"
    retry_reset_fields = {"rebuilt_count": 0, "failed_count": 0, "failures": []}

    class Meta(AbstractJob.Meta):
        verbose_name = "thumbnail job"
