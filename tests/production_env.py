"""The production environment docs/DEPLOYMENT.md documents, as the settings checks and web hardening
suites start `manage.py` with it."""

GOOD_SECRET = "x" * 20 + "-a-long-random-production-secret-value-for-tests-only-0123456789"

PRODUCTION_ENV = {
    "IMAGINEER_ENV": "production",
    "SECRET_KEY": GOOD_SECRET,
    "DATABASE_URL": "postgres://imagineer:pw@db.internal:5432/imagineer",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "REDIS_URL": "redis://redis.internal:6379/1",
    "ALLOWED_HOSTS": "imagineer.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://imagineer.example.com",
    "EMAIL_URL": "smtp+tls://alerts:pw@smtp.example.com:587",
}
