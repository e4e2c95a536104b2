from django.conf import settings
from django.db import models
from django.db.models import Q

from imagineer.core.models import AbstractJob


class ModelFamily(models.TextChoices):
    SD1 = "sd1", "SD 1.x"
    SD2 = "sd2", "SD 2.x"
    SDXL = "sdxl", "SDXL"


# (min, max) width/height per family; both must also be multiples of 8.
FAMILY_SIZE_LIMITS = {ModelFamily.SD1: (64, 2048), ModelFamily.SD2: (64, 2048), ModelFamily.SDXL: (512, 2048)}
FAMILY_DEFAULT_SIZE = {ModelFamily.SD1: 512, ModelFamily.SD2: 768, ModelFamily.SDXL: 1024}


class ModelSource(models.TextChoices):
    HUB = "hub", "Hugging Face hub id"
    DIFFUSERS_DIR = "diffusers_dir", "Local diffusers folder"
    SINGLE_FILE = "single_file", "Single-file checkpoint (.safetensors/.ckpt)"


class DiffusionModel(models.Model):
    """A diffusion model the workers can load. Exactly one is the default."""

    name = models.SlugField(max_length=100, unique=True, help_text="What API clients and set templates call it.")
    source_type = models.CharField(max_length=16, choices=ModelSource.choices)
    source = models.CharField(
        max_length=500,
        help_text="Hub id (org/name), or a path on the workers: absolute, or relative to IMAGINEER_DATA_DIR.",
    )
    family = models.CharField(max_length=8, choices=ModelFamily.choices, default=ModelFamily.SD1)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Per-model defaults; empty means "the global default" (settings IMAGINEER_GENERATION_*).
    default_steps = models.PositiveIntegerField(null=True, blank=True)
    default_guidance_scale = models.FloatField(null=True, blank=True)
    default_width = models.PositiveIntegerField(null=True, blank=True)
    default_height = models.PositiveIntegerField(null=True, blank=True)
    default_scheduler = models.CharField(max_length=32, blank=True)
    default_negative_prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_model")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_family_display()})"


class LoraProvenance(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    TRAINED = "trained", "Trained run"
    IMPORTED = "imported", "Imported"


class Lora(models.Model):
    """A LoRA adapter file (.safetensors only) that generation can stack onto a model."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    file = models.FileField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    file_size = models.PositiveBigIntegerField(default=0)
    family = models.CharField(max_length=8, choices=ModelFamily.choices)
    trigger_words = models.CharField(max_length=500, blank=True, help_text="Comma-separated phrases.")
    default_weight = models.FloatField(default=0.6)
    provenance = models.CharField(max_length=16, choices=LoraProvenance.choices, default=LoraProvenance.UPLOADED)
    source_id = models.BigIntegerField(null=True, blank=True, help_text="Training run id, when trained here.")
    source_note = models.CharField(max_length=255, blank=True, help_text="Where it came from (e.g. imported folder).")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LoRA"

    def __str__(self) -> str:
        return self.name

    @property
    def trigger_word_list(self) -> list[str]:
        return [w.strip() for w in self.trigger_words.split(",") if w.strip()]


class GenerationJob(AbstractJob):
    """One prompt, one model, `count` images (batched in one forward pass where memory allows)."""

    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    model = models.ForeignKey(DiffusionModel, on_delete=models.PROTECT, related_name="generation_jobs")
    scheduler = models.CharField(max_length=32)
    steps = models.PositiveIntegerField()
    guidance_scale = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    seed = models.BigIntegerField(help_text="Seed of the first image; image i uses seed + i.")
    count = models.PositiveSmallIntegerField(default=1)
    loras = models.JSONField(default=list, blank=True, help_text='[{"lora": id, "name": ..., "weight": ...}]')
    album = models.ForeignKey(
        "albums.Album", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_jobs"
    )
    images = models.ManyToManyField("albums.Image", blank=True, related_name="generation_jobs")
    load_seconds = models.FloatField(null=True, blank=True, help_text="Getting the pipeline (0 when warm).")
    inference_seconds = models.FloatField(null=True, blank=True)
    save_seconds = models.FloatField(null=True, blank=True)

    task_name = "generation.tasks.run_generation_job"
    retry_reset_fields = {"load_seconds": None, "inference_seconds": None, "save_seconds": None}

    class Meta(AbstractJob.Meta):
        verbose_name = "generation job"


class SetRun(AbstractJob):
    """Generate one image per row of a set template into a new output album."""

    template = models.ForeignKey("albums.Album", on_delete=models.PROTECT, related_name="set_runs")
    output_album = models.ForeignKey(
        "albums.Album", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_by_set_runs"
    )
    album_name = models.CharField(max_length=255)
    theme = models.CharField(max_length=500)
    model = models.ForeignKey(DiffusionModel, on_delete=models.PROTECT, related_name="set_runs")
    # Resolved parameters for every row: steps, guidance_scale, width, height, scheduler, negative_prompt, seed.
    parameters = models.JSONField(default=dict)
    batch_size = models.PositiveSmallIntegerField(default=4)
    total_items = models.PositiveIntegerField(default=0)
    completed_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True, help_text='[{"row": n, "error": ...}]')
    inference_seconds = models.FloatField(default=0, help_text="Diffusion time of every batch, summed.")

    task_name = "generation.tasks.run_set_run"
    retry_reset_fields = {"completed_items": 0, "failed_items": 0, "failures": [], "inference_seconds": 0}

    class Meta(AbstractJob.Meta):
        verbose_name = "set run"
