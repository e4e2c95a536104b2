"""Training runs: a LoRA trained on captioned album images, by a child process under guards."""

from django.db import models

from imagineer.core.models import AbstractJob

# The parameters a run carries (defaults: runtime config `training`, same names and bounds there).
PARAMETER_NAMES = (
    "steps",
    "rank",
    "alpha",
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "resolution",
    "center_crop",
    "random_flip",
    "seed",
    "save_every_steps",
    "mixed_precision",
)


class TrainingRun(AbstractJob):
    """One LoRA training run. progress_current/progress_total are optimizer steps."""

    name = models.CharField(max_length=200, help_text="Also the name of the LoRA it produces.")
    description = models.TextField(blank=True)
    model = models.ForeignKey("generation.DiffusionModel", on_delete=models.PROTECT, related_name="training_runs")
    albums = models.ManyToManyField("albums.Album", related_name="training_runs", help_text="The dataset.")
    trigger_words = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated; prepended to every caption and kept on the LoRA."
    )
    parameters = models.JSONField(default=dict, help_text="Resolved parameters (seed included), as trained.")
    # The dataset as the run found it when it started (and at creation, before that).
    captioned_images = models.PositiveIntegerField(default=0)
    uncaptioned_images = models.PositiveIntegerField(default=0)
    manual_captions = models.PositiveIntegerField(default=0, help_text="Captions written by a person (they win).")
    missing_files = models.PositiveIntegerField(default=0, help_text="Captioned images whose file was gone.")
    latest_loss = models.FloatField(null=True, blank=True)
    final_loss = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=16, blank=True, help_text="cuda or cpu, as the trainer reported.")
    prepare_seconds = models.FloatField(null=True, blank=True, help_text="Copying the dataset to scratch.")
    train_seconds = models.FloatField(null=True, blank=True, help_text="The trainer process, start to exit.")
    trainer_pid = models.PositiveIntegerField(null=True, blank=True, help_text="While the trainer runs.")
    log_file = models.FileField(max_length=255, blank=True, help_text="Every line the trainer printed.")
    lora = models.ForeignKey(
        "generation.Lora", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )

    task_name = "training.tasks.train_lora"
    retry_reset_fields = {
        "latest_loss": None,
        "final_loss": None,
        "device": "",
        "prepare_seconds": None,
        "train_seconds": None,
        "trainer_pid": None,
        "missing_files": 0,
    }

    class Meta(AbstractJob.Meta):
        verbose_name = "training run"


class TrainingCheckpoint(models.Model):
    """An intermediate LoRA a run saved every `save_every_steps` (the final one is its registered LoRA)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    loss = models.FloatField(null=True, blank=True)
    file = models.FileField(max_length=255)
    file_size = models.PositiveBigIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "attempt", "step"]
        constraints = [
            models.UniqueConstraint(fields=["run", "attempt", "step"], name="unique_training_checkpoint"),
        ]

    def __str__(self) -> str:
        return f"run #{self.run_id} step {self.step}"
