"""Training runs (LoRA training jobs) and scrape jobs (building datasets from the web)."""

from training.models.runs import PARAMETER_NAMES, TrainingCheckpoint, TrainingRun
from training.models.scrapes import ScrapeJob

__all__ = ["PARAMETER_NAMES", "ScrapeJob", "TrainingCheckpoint", "TrainingRun"]
