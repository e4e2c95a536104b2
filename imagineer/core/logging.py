"""One logging setup for web, worker and beat: structlog over the standard library.

Every line, whether it comes from structlog or from a plain `logging` call in Django, Celery or a
library, passes the same processor chain, and the one redaction step (`redact_event`) runs last
before the renderer, on the fully built line: the message with its %-args already merged in, the
rendered traceback, every field. What it does (docs/LOGGING.md has examples):
- prompts/negative prompts become their length and a short hash (by field name, and quoted
  `prompt: "..."` pairs inside text);
- secrets become "[REDACTED]": fields named like tokens, keys, passwords, cookies, sessions,
  Authorization; and inside text `name=value` / `name: value` pairs with such names,
  `Bearer|Token|Basic <credential>`, API-key shapes (`sk-...`), URL user:password@ and Slack
  webhook paths;
- query strings of URLs become `?<query>`;
- e-mail addresses become "[email]";
- absolute paths of the checkout, data dir, media root, virtualenv and Python become short
  placeholders, tracebacks included, so no log line carries a filesystem path of the deployment.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sys
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured

FORMATS = ("json", "console")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# A field whose name contains one of these is a secret (after lower-casing, "-" read as "_").
SECRET_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "csrf",
    "credential",
    "private_key",
    "access_key",
)
PROMPT_KEYS = ("prompt",)  # prompt, negative_prompt, prompts, ...
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

# --- Free-text patterns, applied in this order --------------------------------------------------
# scheme://user:password@host -> scheme://[REDACTED]@host
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@'\"<>]+@", re.IGNORECASE)
# Slack-style incoming webhooks: the path is the credential.
_WEBHOOK_PATH = re.compile(r"(hooks\.slack\.com/services/)[\w/-]+", re.IGNORECASE)
# The query string of an absolute URL, or of a /path at a word boundary ("GET /api/x?token=1").
_URL_QUERY = re.compile(
    r"((?:\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]+|(?<![\w/.~%+=-])/[^\s?#'\"<>]*)\?)[^\s#'\"<>]+", re.IGNORECASE
)
# A Cookie / Set-Cookie header: everything to the end of the line.
_COOKIE_HEADER = re.compile(r"\b((?:set-)?cookie['\"]?\s*[:=]\s*)(?!['\"])[^\r\n'\"]+", re.IGNORECASE)
# "prompt": "..." / prompt='...' inside text (reprs, JSON): the quoted value.
_QUOTED_PROMPT = re.compile(r"""(\b\w*prompts?['"]?\s*[:=]\s*)(['"])((?:\\.|(?!\2).)*)\2""", re.IGNORECASE | re.DOTALL)
_SECRET_NAME = (
    r"[\w-]{0,40}(?:token|secret|passw(?:or)?d|api[_-]?key|authori[sz]ation|sessionid|session[_-]?key|csrf"
    r"|credential|private[_-]?key|access[_-]?key)(?:[_-]?(?:id|key|hash|value)|s|\d)?"
)
# name=value / name: value / "name": "value" with a secret-looking name.
_SECRET_PAIR = re.compile(
    rf"""(\b{_SECRET_NAME}['"]?\s*[:=]\s*)(?:(['"])(?:\\.|(?!\2).)*\2|(?:(?:bearer|token|basic|digest)\s+)?[^\s,;&'"<>)}}\]]+)""",
    re.IGNORECASE,
)
# A credential after an auth scheme (at least 8 characters, one of them a digit).
_SCHEME_CREDENTIAL = re.compile(r"\b(bearer|token|basic|digest)\s+(?=[\w.~+/=-]*\d)[\w.~+/=-]{8,}", re.IGNORECASE)
# Well-known API key shapes: Anthropic/OpenAI, GitHub, Slack, AWS access key ids.
_KEY_SHAPES = re.compile(
    r"\b(?:sk-(?:ant-)?[\w-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16})\b"
)

REDACTED = "[REDACTED]"


def describe_prompt(text: str) -> str:
    """What a log line may say about a prompt: its length and a short, stable hash."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"<prompt len={len(text)} sha256={digest}>"


@functools.cache
def _process_paths() -> tuple[tuple[str, str], ...]:
    """Paths fixed for the life of the process."""
    return ((sys.prefix, "<venv>"), (sys.base_prefix, "<python>"))


def _settings_paths() -> tuple[tuple[str, str], ...]:
    """Paths from settings, read at call time (tests change MEDIA_ROOT per test)."""
    from django.conf import settings

    if not settings.configured:
        return ()
    return (
        (str(getattr(settings, "MEDIA_ROOT", "")), "<media>"),
        (str(getattr(settings, "IMAGINEER_MODELS_DIR", "")), "<models>"),
        (str(getattr(settings, "IMAGINEER_SCRATCH_DIR", "")), "<scratch>"),
        (str(getattr(settings, "IMAGINEER_TRAINING_DIR", "")), "<training>"),
        (str(getattr(settings, "IMAGINEER_CONFIG", "")), "<config>"),
        (str(getattr(settings, "DATA_DIR", "")), "<data>"),
        (str(getattr(settings, "BASE_DIR", "")), "<app>"),
    )


# Settings whose values are credentials: the literal value never appears in a line, whatever
# shape it has (a webhook URL of any provider, an SMTP password, an API key).
SECRET_SETTINGS = (
    "SECRET_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_CLIENT_SECRET",
    "EMAIL_HOST_PASSWORD",
    "IMAGINEER_ALERT_WEBHOOK_URL",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


def _settings_secrets() -> tuple[str, ...]:
    from django.conf import settings

    if not settings.configured:
        return ()
    # Short values would redact ordinary words; real credentials are long.
    return tuple(value for name in SECRET_SETTINGS if len(value := str(getattr(settings, name, "") or "")) >= 12)


@functools.lru_cache(maxsize=32)
def _path_pattern(candidates: tuple[tuple[str, str], ...]) -> tuple[re.Pattern | None, dict[str, str]]:
    """One regex for every path that must never appear in a log line, longest first."""
    pairs: dict[str, str] = {}
    for path, placeholder in candidates:
        path = str(path).rstrip("/")
        if path.startswith("/") and len(path) > 1 and path not in pairs:
            pairs[path] = placeholder
    if not pairs:
        return None, {}
    ordered = sorted(pairs, key=len, reverse=True)
    alternatives = "|".join(re.escape(path) for path in ordered)
    return re.compile(rf"(?:{alternatives})(?![\w.-])"), pairs


def _scrub_paths(value: str) -> str:
    if "/" not in value:
        return value
    pattern, placeholders = _path_pattern(_settings_paths() + _process_paths())
    if pattern is None:
        return value
    return pattern.sub(lambda match: placeholders[match.group(0)], value)


def _redact_pair(match: re.Match) -> str:
    return match.group(1) + REDACTED


_TOKEN_COUNT = re.compile(r"tokens['\"]?\s*[:=]\s*\d+$", re.IGNORECASE)


def _redact_secret_pair(match: re.Match) -> str:
    if _TOKEN_COUNT.search(match.group(0)):
        return match.group(0)  # input_tokens=1200 is a count, not a credential
    return match.group(1) + REDACTED


def scrub_text(value: str) -> str:
    """Free text (a message, a traceback, any string field) with everything sensitive replaced."""
    for secret in _settings_secrets():
        if secret in value:
            value = value.replace(secret, REDACTED)
    value = _scrub_paths(value)
    if "@" in value and "://" in value:
        value = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", value)
    value = _WEBHOOK_PATH.sub(lambda m: m.group(1) + REDACTED, value)
    if "?" in value:
        value = _URL_QUERY.sub(lambda m: m.group(1) + "<query>", value)
    if ":" in value or "=" in value:
        value = _COOKIE_HEADER.sub(_redact_pair, value)
        value = _QUOTED_PROMPT.sub(lambda m: m.group(1) + m.group(2) + describe_prompt(m.group(3)) + m.group(2), value)
        value = _SECRET_PAIR.sub(_redact_secret_pair, value)
    value = _SCHEME_CREDENTIAL.sub(lambda m: m.group(1) + " " + REDACTED, value)
    value = _KEY_SHAPES.sub(REDACTED, value)
    if "@" in value:
        value = EMAIL_RE.sub("[email]", value)
    return value


def _is_secret_key(lowered: str) -> bool:
    return any(part in lowered for part in SECRET_KEY_PARTS)


def _scrub(key: str, value: Any) -> Any:
    lowered = key.lower().replace("-", "_")
    if isinstance(value, str) and any(part in lowered for part in PROMPT_KEYS):
        return describe_prompt(value)
    if _is_secret_key(lowered) and value not in (None, "") and not isinstance(value, (bool, int, float)):
        return REDACTED  # numbers are counts (input_tokens=1200), never credentials
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(key, v) for v in value]
    # Anything else (a request, a model, a path object) is logged as its scrubbed repr, never raw:
    # e.g. Django's `request` extra renders as "<WSGIRequest: GET '/x?token=...'>".
    return scrub_text(repr(value))


def redact_event(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the one redaction step every line passes."""
    return {key: _scrub(key, value) for key, value in event_dict.items()}


def parse_logger_levels(text: str) -> dict[str, str]:
    """LOG_LEVELS="celery=WARNING,imagineer.request=INFO" -> {"celery": "WARNING", ...}."""
    levels: dict[str, str] = {}
    for item in (part.strip() for part in text.replace(";", ",").split(",")):
        if not item:
            continue
        name, sep, level = (piece.strip() for piece in item.partition("="))
        level = level.upper()
        if not sep or not name or level not in LEVELS:
            raise ImproperlyConfigured(
                f"LOG_LEVELS entry {item!r} is not logger=LEVEL (LEVEL one of {', '.join(LEVELS)})."
            )
        levels[name] = level
    return levels


def add_request_user(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: every line of a request names its user id, once the user is known."""
    if "user_id" not in event_dict:
        from imagineer.core.request_context import authenticated_user_id

        user_id = authenticated_user_id()
        if user_id is not None:
            event_dict["user_id"] = user_id
    return event_dict


def build_logging_config(*, level: str, fmt: str, logger_levels: dict[str, str] | None = None) -> dict[str, Any]:
    """dictConfig for Django's LOGGING, and structlog configured to feed into it.

    `logger_levels` (from LOG_LEVELS) set or override the level of single loggers, e.g.
    {"celery": "WARNING", "django.request": "INFO"}.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ImproperlyConfigured(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}.")
    if fmt not in FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    shared_processors = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        add_request_user,
        # log.info("x %s", value) from structlog: merged here, so redaction sees the final text
        # (plain logging calls arrive with their message already merged: record.getMessage()).
        structlog.stdlib.PositionalArgumentsFormatter(),
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
    loggers: dict[str, dict[str, Any]] = {
        # Django logs every 4xx/5xx itself; our request line already says it.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO: a webhook URL is a credential.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    }
    for name, logger_level in (logger_levels or {}).items():
        loggers.setdefault(name, {})["level"] = logger_level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": shared_processors,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    # Tracebacks become text before redaction, so paths and secrets in them are
                    # scrubbed too (the console renderer then prints that text, not its own).
                    structlog.processors.format_exc_info,
                    redact_event,
                    renderer,
                ],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers,
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


logging.captureWarnings(True)
