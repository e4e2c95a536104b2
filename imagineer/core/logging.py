"""One logging setup for web, worker and beat: structlog over the standard library.

Every line, whether it comes from structlog or from a plain `logging` call in Django, Celery or a
library, passes the same processor chain, so redaction happens in one place:
- prompts/negative prompts become their length and a short hash;
- secrets (tokens, keys, passwords, cookies, Authorization) become "[REDACTED]";
- e-mail addresses become "[email]";
- absolute paths of the checkout, data dir, media root and virtualenv become short placeholders,
  tracebacks included, so no log line carries a filesystem path.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from typing import Any

import structlog

SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "api_key", "apikey", "authorization", "cookie", "session")
PROMPT_KEYS = ("prompt", "negative_prompt")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def describe_prompt(text: str) -> str:
    """What a log line may say about a prompt: its length and a short, stable hash."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"<prompt len={len(text)} sha256={digest}>"


def _path_replacements() -> list[tuple[str, str]]:
    """Absolute paths that must never appear in a log line, longest first, read at call time."""
    from django.conf import settings

    candidates = [(sys.prefix, "<venv>"), (sys.base_prefix, "<python>")]
    if settings.configured:
        candidates += [
            (getattr(settings, "MEDIA_ROOT", ""), "<media>"),
            (getattr(settings, "DATA_DIR", ""), "<data>"),
            (getattr(settings, "BASE_DIR", ""), "<app>"),
        ]
    pairs = {str(path): placeholder for path, placeholder in candidates if str(path) not in ("", "/", ".")}
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def _scrub_string(value: str) -> str:
    for prefix, placeholder in _path_replacements():
        if prefix in value:
            value = value.replace(prefix, placeholder)
    return EMAIL_RE.sub("[email]", value)


def _scrub(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(part in lowered for part in PROMPT_KEYS) and isinstance(value, str):
        return describe_prompt(value)
    if any(part in lowered for part in SECRET_KEY_PARTS) and value not in (None, ""):
        return "[REDACTED]"
    if isinstance(value, str):
        return _scrub_string(value)
    if isinstance(value, dict):
        return {k: _scrub(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(key, v) for v in value]
    return value


def redact_event(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the one redaction step every line passes."""
    return {key: _scrub(key, value) for key, value in event_dict.items()}


def build_logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """dictConfig for Django's LOGGING, and structlog configured to feed into it."""
    shared_processors = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": shared_processors,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    redact_event,
                    renderer,
                ],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django logs every 4xx/5xx itself; our request line already says it.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
        },
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


logging.captureWarnings(True)
