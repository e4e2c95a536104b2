"""Training's use cases: `runs` (LoRA training runs) and `scrapes` (scrape jobs building datasets)."""
