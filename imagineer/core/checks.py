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
