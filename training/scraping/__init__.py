"""The crawler behind scrape jobs (issue #5): HTTP client and private-network guard, robots.txt,
page extraction, downloads, duplicate checks and storing kept images. The use case that drives it
(start a job, the job body) is training/services/scrapes.py; docs/SCRAPING.md."""
