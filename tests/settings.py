"""Test settings: the real settings, on a private data dir so tests never touch ./data.

A Celery worker process started by a test is given this same data dir (and database), so it sees
what the test wrote.
"""

import os
import tempfile

os.environ.setdefault("IMAGINEER_DATA_DIR", tempfile.mkdtemp(prefix="imagineer-test-"))

from imagineer.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: no slow hashing in tests

# Tests never reach the real Claude API: tests that use Claude point it at a local fake server.
ANTHROPIC_API_KEY = ""
ANTHROPIC_BASE_URL = ""
IMAGINEER_LABELER = "auto"
# The test sites are served on 127.0.0.1; other loopback addresses (127.0.0.2 …) stay refused, which
# is how the scraper's private-network guard is tested without touching a real private network.
IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["127.0.0.1"]
