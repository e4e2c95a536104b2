"""Test settings: the real settings, on a private data dir so tests never touch ./data.

A Celery worker process started by a test is given this same data dir (and database), so it sees
what the test wrote.
"""

import os
import tempfile

# Under pytest-xdist the controller imports these settings too and its environment reaches every
# worker: each worker makes a data dir of its own (broker folder, models, scratch), which its own
# subprocesses (same worker id in their environment) then keep.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker and os.environ.get("IMAGINEER_TEST_DATA_DIR_OWNER") != _xdist_worker:
    os.environ["IMAGINEER_DATA_DIR"] = tempfile.mkdtemp(prefix=f"imagineer-test-{_xdist_worker}-")
    os.environ["IMAGINEER_TEST_DATA_DIR_OWNER"] = _xdist_worker
os.environ.setdefault("IMAGINEER_DATA_DIR", tempfile.mkdtemp(prefix="imagineer-test-"))

from imagineer.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: no slow hashing in tests

# Tests never reach the real Claude API: tests that use Claude point it at a local fake server.
ANTHROPIC_API_KEY = ""
ANTHROPIC_BASE_URL = ""
IMAGINEER_LABELER = "auto"
# The NSFW autocheck (IMAGINEER_NSFW_AUTOCHECK, on in production) is off in this test process: most
# tests store public images and read them back anonymously at once, as before the check existed.
# Tests of the check turn it on (the `settings` fixture; it is read at call time). Processes a test
# starts (Celery workers, web servers) run the production settings: the check is on there.
IMAGINEER_NSFW_AUTOCHECK = False
# The test sites are served on 127.0.0.1; other loopback addresses (127.0.0.2 …) stay refused, which
# is how the scraper's private-network guard is tested without touching a real private network.
IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["127.0.0.1"]

# pytest-xdist: each test process gets Redis databases of its own (broker and cache), as it gets
# its own data dir above and its own test database (pytest-django adds the _gwN suffix), so a
# Celery worker started by one process never takes another's tasks and cache.clear() in one never
# wipes another's rate-limit counters. gw0 keeps the configured numbers; gwN adds 2N.
if _xdist_worker.startswith("gw") and _xdist_worker[2:].isdigit():
    import re as _re

    def _shifted_redis_db(url: str, shift: int) -> str:
        if not url.startswith(("redis://", "rediss://")):
            return url
        match = _re.match(r"^(.*?//[^/]*)(?:/(\d+))?$", url)
        return f"{match.group(1)}/{int(match.group(2) or 0) + shift}" if match else url

    _shift = 2 * int(_xdist_worker[2:])
    CELERY_BROKER_URL = _shifted_redis_db(CELERY_BROKER_URL, _shift)  # noqa: F405
    # Celery reads the CELERY_BROKER_URL environment variable before its config: the app in this
    # process must send where this process's workers listen.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
    if REDIS_URL:  # noqa: F405
        REDIS_URL = _shifted_redis_db(REDIS_URL, _shift)  # noqa: F405
        CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
