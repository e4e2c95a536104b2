"""Legacy import: runs of `manage.py import_legacy_media`, the albums they made, a record per source file."""

from django.db import models

from albums.models import Album, Image
from imagineer.core.models import AbstractJob


class ImportMode(models.TextChoices):
    COPY = "copy", "Copy into media"
    SYMLINK = "symlink", "Symlink from media (local media storage only)"


class ImportRun(AbstractJob):
    """One run of the importer, with what it found and did. The command runs it in its own process
    through the shared job lifecycle (claim, heartbeat, finish), so a killed run is reaped like any job.
    """

    # Server paths, for operators in the admin; never served by the API.
    outputs_root = models.TextField(blank=True)
    packs_root = models.TextField(blank=True)
    mode = models.CharField(max_length=8, choices=ImportMode.choices, default=ImportMode.COPY)
    limit = models.PositiveIntegerField(null=True, blank=True)
    private_packs = models.JSONField(default=list, blank=True)
    manifest_path = models.TextField(blank=True)
    # Set only by the command's --follow-links-outside (no API sets it); kept so a retry walks alike.
    follow_links_outside = models.BooleanField(
        default=False, help_text="Symlinks pointing outside the import roots were followed (--follow-links-outside)."
    )

    files_seen = models.PositiveIntegerField(default=0)
    imported_count = models.PositiveIntegerField(default=0)
    already_present_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0, help_text="Not images, unreadable or corrupt.")
    orphan_sidecar_count = models.PositiveIntegerField(default=0)
    links_outside_count = models.PositiveIntegerField(
        default=0, help_text="Symlinks pointing outside the import roots, not followed (counted in skipped too)."
    )
    albums_created = models.PositiveIntegerField(default=0)
    albums_reused = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True, help_text='[{"path": ..., "reason": ...}] (relative paths)')

    task_name = "legacy.tasks.run_import"
    retry_reset_fields = {
        "files_seen": 0,
        "imported_count": 0,
        "already_present_count": 0,
        "duplicate_count": 0,
        "skipped_count": 0,
        "orphan_sidecar_count": 0,
        "links_outside_count": 0,
        "albums_created": 0,
        "albums_reused": 0,
        "skipped": [],
    }

    class Meta(AbstractJob.Meta):
        verbose_name = "legacy import run"


class LegacyAlbum(models.Model):
    """The stable key an album was made for (e.g. `outputs/decks/card_deck_x`): later runs find it again."""

    key = models.CharField(max_length=500, unique=True)
    album = models.OneToOneField(Album, on_delete=models.CASCADE, related_name="legacy_key")
    created_by_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class AssetOutcome(models.TextChoices):
    IMPORTED = "imported", "Imported"
    ALREADY_PRESENT = "already_present", "Already present (same bytes as when last imported)"
    DUPLICATE = "duplicate", "Duplicate of an image already stored (linked to its album)"
    SKIPPED = "skipped", "Skipped: not an image we store (corrupt, truncated, too large …)"


class LegacyAsset(models.Model):
    """Provenance of one imported source file: where it was, its bytes' hash, the image it became.

    Size and mtime let a later run know the file unchanged without hashing it again.
    """

    source_path = models.CharField(max_length=1024, unique=True, help_text="Absolute path on the import machine.")
    root = models.CharField(max_length=8)
    relative_path = models.CharField(max_length=1024)
    size = models.PositiveBigIntegerField()
    mtime_ns = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    # When the image was made (as read from its metadata): places an unchanged file again unread.
    timestamp = models.DateTimeField(null=True, blank=True)
    # Empty for a skipped file (remembered so an unchanged bad file is not read again either).
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.CASCADE, related_name="legacy_assets")
    album = models.ForeignKey(Album, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=16, choices=AssetOutcome.choices)
    reason = models.CharField(max_length=255, blank=True, help_text="Why a skipped file was skipped.")
    run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="assets")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["root", "relative_path"]

    def __str__(self) -> str:
        return f"{self.root}/{self.relative_path}"
