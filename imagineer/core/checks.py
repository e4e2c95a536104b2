"""Production safety checks.

Registered as Django system checks (so `manage.py check`, `migrate` and `runserver` stop on them)
and also run by the WSGI/ASGI entry points and the Celery worker, which Django's check framework
does not cover: a production process never starts on SQLite, DEBUG or a default secret key.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

PRODUCTION_TAG = "imagineer_production"
MIN_SECRET_KEY_LENGTH = 50


@checks.register(PRODUCTION_TAG, deploy=False)
def check_production_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not settings.IS_PRODUCTION:
        return []
    errors = []
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        errors.append(
            checks.Error(
                "SQLite is the embedded default and is not allowed in production.",
                hint="Set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME.",
                id="imagineer.E001",
            )
        )
    if settings.DEBUG:
        errors.append(
            checks.Error(
                "DEBUG is on in production: tracebacks and settings would be shown to visitors.",
                hint="Set DEBUG=false (or leave it unset: production defaults to off).",
                id="imagineer.E002",
            )
        )
    key = settings.SECRET_KEY or ""
    if not key or key == settings.INSECURE_DEFAULT_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
        errors.append(
            checks.Error(
                f"SECRET_KEY is empty, the development default, or shorter than {MIN_SECRET_KEY_LENGTH} characters.",
                hint="Set SECRET_KEY to a long random value, e.g. the output of "
                '`python -c "import secrets; print(secrets.token_urlsafe(64))"`.',
                id="imagineer.E003",
            )
        )
    if not settings.ALLOWED_HOSTS:
        errors.append(
            checks.Error(
                "ALLOWED_HOSTS is empty in production.",
                hint="Set ALLOWED_HOSTS to the host names the site is served under, comma-separated.",
                id="imagineer.E004",
            )
        )
    if settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
        errors.append(
            checks.Error(
                "The console mail backend prints whole e-mails, recipients included, to the log.",
                hint="Set EMAIL_URL=smtp+tls://USER:PASSWORD@HOST:587 (or dummymail:// to send none).",
                id="imagineer.E006",
            )
        )
    elif settings.EMAIL_BACKEND == "django.core.mail.backends.dummy.EmailBackend":
        errors.append(
            checks.Warning(
                "No mail backend: disk alerts go to the webhook only (if one is set).",
                hint="Set EMAIL_URL=smtp+tls://USER:PASSWORD@HOST:587.",
                id="imagineer.W001",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        errors.append(
            checks.Error(
                "The filesystem Celery broker is the embedded default and only works on one machine.",
                hint="Set CELERY_BROKER_URL=redis://HOST:6379/0.",
                id="imagineer.E005",
            )
        )
    return errors


def refuse_unsafe_production() -> None:
    """Raise with every failed production check; used where Django does not run checks."""
    errors = check_production_settings()
    if errors:
        lines = [f"{e.id}: {e.msg} {e.hint}" for e in errors]
        raise ImproperlyConfigured("Refusing to start in production:\n" + "\n".join(lines))


@checks.register()
def check_runtime_config_environment(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Settings that feed the runtime config (IMAGINEER_GENERATION_STEPS, ...) must be in its ranges."""
    from imagineer.core.runtime_config import environment_problems

    return [
        checks.Error(
            f"The environment gives the runtime config key {key} an invalid value: {reason}.",
            hint="Fix the setting that feeds this key (docs/CONFIG.md lists them) or set the key in the config file.",
            id="imagineer.E007",
        )
        for key, reason in environment_problems().items()
    ]


@checks.register()
def check_signup_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Who may sign up (imagineer/core/signup.py): a known mode, lists that can match, sane invite days."""
    from imagineer.core.signup import MAX_INVITE_DAYS, SIGNUP_MODES

    mode = settings.IMAGINEER_SIGNUP
    errors: list[checks.CheckMessage] = []
    if mode not in SIGNUP_MODES:
        errors.append(
            checks.Error(
                f"IMAGINEER_SIGNUP is {mode!r}, which is not a sign-up mode; it must be one of "
                f"{', '.join(SIGNUP_MODES)}.",
                hint="closed (the default): only IMAGINEER_ADMIN_EMAILS and invited addresses get an account; "
                "allowlist: also IMAGINEER_SIGNUP_EMAILS and addresses at IMAGINEER_SIGNUP_DOMAINS; "
                "open: anybody with a Google account.",
                id="imagineer.E010",
            )
        )
    not_addresses = [n for n, e in enumerate(settings.IMAGINEER_SIGNUP_EMAILS, 1) if "@" not in e]
    if not_addresses:
        errors.append(
            checks.Error(
                f"IMAGINEER_SIGNUP_EMAILS has entries that are not e-mail addresses (positions {_positions(not_addresses)} in the list).",
                hint="List whole addresses there (a@example.com); a domain that admits all its addresses "
                "belongs in IMAGINEER_SIGNUP_DOMAINS.",
                id="imagineer.E011",
            )
        )
    not_domains = [n for n, d in enumerate(settings.IMAGINEER_SIGNUP_DOMAINS, 1) if "@" in d or "." not in d]
    if not_domains:
        errors.append(
            checks.Error(
                f"IMAGINEER_SIGNUP_DOMAINS has entries that are not domain names (positions {_positions(not_domains)} in the list).",
                hint="List domains there (example.com, without @); single addresses belong in IMAGINEER_SIGNUP_EMAILS.",
                id="imagineer.E012",
            )
        )
    days = settings.IMAGINEER_INVITE_DAYS
    if not 1 <= days <= MAX_INVITE_DAYS:
        errors.append(
            checks.Error(
                f"IMAGINEER_INVITE_DAYS is {days}; an invitation must stay valid 1 to {MAX_INVITE_DAYS} days.",
                hint="Set IMAGINEER_INVITE_DAYS to a number of days in that range (default 14).",
                id="imagineer.E013",
            )
        )
    if mode == "allowlist" and not settings.IMAGINEER_SIGNUP_EMAILS and not settings.IMAGINEER_SIGNUP_DOMAINS:
        errors.append(
            checks.Warning(
                "IMAGINEER_SIGNUP is allowlist but IMAGINEER_SIGNUP_EMAILS and IMAGINEER_SIGNUP_DOMAINS are empty: "
                "sign-up works as closed.",
                hint="List addresses in IMAGINEER_SIGNUP_EMAILS or domains in IMAGINEER_SIGNUP_DOMAINS "
                "(comma-separated), or set IMAGINEER_SIGNUP=closed.",
                id="imagineer.W010",
            )
        )
    return errors


def _positions(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)
