"""Admin for training runs and scrape jobs (one module each)."""

from training.admin import runs, scrapes  # noqa: F401
