"""Training runs (LoRA training jobs) and scrape jobs (building datasets from the web)."""

from training.models.runs import PARAMETER_NAMES, TrainingCheckpoint, TrainingRun

__all__ = ["PARAMETER_NAMES", "TrainingCheckpoint", "TrainingRun"]
