"""Scraping: build datasets from web pages (issue #5). Entry points are in services.py; docs/SCRAPING.md."""
