"""The credential scan of docs/LOGGING.md, run across whole suites rather than one flow.

While a test of a scanned suite runs, every log line the process writes is also formatted by the
production JSON formatter into a buffer, and every credential the test creates is remembered: DRF
token keys and session keys (from post_save signals, so a rolled-back or flushed database does not
hide them), plus the secret settings in force. At the end no credential may appear in any line.
Lines written by other processes (Celery workers, servers a test starts) are not seen here.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models.signals import post_save
from rest_framework.authtoken.models import Token

from imagineer.core.logging import build_logging_config

SCANNED_SUITES = (
    "tests/security/",
    "tests/faults/",
    "tests/browser/",
    "tests/deploy/",
    "tests/training/",
    "tests/perf/",
)
SECRET_SETTINGS = ("SECRET_KEY", "ANTHROPIC_API_KEY", "IMAGINEER_ALERT_WEBHOOK_URL", "EMAIL_HOST_PASSWORD")
MIN_SECRET_LENGTH = 12  # shorter values ("pw") would match innocent text


class CredentialScan:
    def __init__(self) -> None:
        spec = dict(build_logging_config(level="DEBUG", fmt="json")["formatters"]["structured"])
        factory = spec.pop("()")
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(factory(**spec))
        self.credentials: dict[str, str] = {}

    def _token_saved(self, sender, instance, **kwargs) -> None:
        self.credentials[instance.key] = "a DRF token"

    def _session_saved(self, sender, instance, **kwargs) -> None:
        self.credentials[instance.session_key] = "a session key"

    def __enter__(self) -> CredentialScan:
        logging.getLogger().addHandler(self.handler)
        post_save.connect(self._token_saved, sender=Token, weak=False)
        post_save.connect(self._session_saved, sender=Session, weak=False)
        return self

    def __exit__(self, *exc) -> None:
        post_save.disconnect(self._token_saved, sender=Token)
        post_save.disconnect(self._session_saved, sender=Session)
        logging.getLogger().removeHandler(self.handler)

    def leaks(self) -> list[str]:
        secrets = dict(self.credentials)
        for name in SECRET_SETTINGS:
            value = str(getattr(settings, name, "") or "")
            secrets.setdefault(value, f"the {name} setting")
        text = self.stream.getvalue()
        found = []
        for value, what in secrets.items():
            if len(value) >= MIN_SECRET_LENGTH and value in text:
                line = next(line for line in text.splitlines() if value in line)
                found.append(f"{what} appears in a log line: {line[:300]}")
        return found


def scanned(nodeid: str) -> bool:
    return nodeid.startswith(SCANNED_SUITES)


__all__ = ["CredentialScan", "scanned"]
