"""Imagineer settings.

Every deploy-time value comes from the environment (django-environ). The defaults are the
"embedded" deployment: SQLite, a filesystem Celery broker and local media, all under
IMAGINEER_DATA_DIR, so `make run` works offline with no server. Production refuses those
defaults through the system checks in imagineer/core/checks.py.
"""

from pathlib import Path

import environ

from imagineer.core.storage import media_storage

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

IMAGINEER_ENV = env.str("IMAGINEER_ENV", default="development").lower()
IS_PRODUCTION = IMAGINEER_ENV == "production"

DATA_DIR = Path(env.str("IMAGINEER_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()

# Marker value: production checks refuse it, development uses it so nothing needs configuring.
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-imagineer-development-only"
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.headless",
    "corsheaders",
    "imagineer.core",
    "albums",
    "generation",
    "training",
    "labeling",
    "legacy",
    "imagineer.ops",
]

MIDDLEWARE = [
    "imagineer.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything that may answer (WhiteNoise, CommonMiddleware): error bodies carry CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "imagineer.urls"
WSGI_APPLICATION = "imagineer.wsgi.application"
AUTH_USER_MODEL = "core.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "imagineer" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'imagineer.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in the embedded deployment: WAL lets readers
    # run beside a writer, IMMEDIATE transactions avoid "database is locked" upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so a Celery worker process started by the tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-imagineer.sqlite3")}
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Cache (rate limits live here too) ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# A Redis that accepts connections and then stops answering would otherwise hold each request
# (a rate-limit count, /readyz) for as long as TCP keeps the socket; with these it answers 503.
REDIS_SOCKET_TIMEOUT_SECONDS = env.float("REDIS_SOCKET_TIMEOUT_SECONDS", default=5.0)


def redis_cache(url: str, socket_timeout: float = REDIS_SOCKET_TIMEOUT_SECONDS) -> dict:
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": socket_timeout, "socket_timeout": socket_timeout},
    }


if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Static and media files -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request otherwise
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "/media/"  # never routed: files are served by id through the API
# IMAGINEER_STORAGE: local (files under MEDIA_ROOT, the default) or s3 (a bucket every machine
# shares: AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, ...; imagineer/core/storage.py).
IMAGINEER_STORAGE = env.str("IMAGINEER_STORAGE", default="local").strip().lower()
# Read here only so log redaction knows the values (SECRET_SETTINGS); None lets django-storages
# fall back to boto3's own chain (the same variables, a profile, an instance or pod role).
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_SESSION_TOKEN = env.str("AWS_SESSION_TOKEN", default="") or None
STORAGES = {
    "default": media_storage(env),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
FILE_UPLOAD_PERMISSIONS = 0o644

# --- Uploads and thumbnails -----------------------------------------------------------------
IMAGINEER_UPLOAD_MAX_BYTES = env.int("IMAGINEER_UPLOAD_MAX_BYTES", default=20 * 1024 * 1024)
# Pillow refuses images above this many pixels: a decompression-bomb guard, decided from the
# header before any pixel is decoded.
IMAGINEER_UPLOAD_MAX_PIXELS = env.int("IMAGINEER_UPLOAD_MAX_PIXELS", default=64_000_000)
IMAGINEER_UPLOAD_RATE = env.str("IMAGINEER_UPLOAD_RATE", default="600/h")
IMAGINEER_THUMBNAIL_SIZE = env.int("IMAGINEER_THUMBNAIL_SIZE", default=256)
# Public image files: browsers keep them a day; shared caches (a CDN, a proxy) only this long, so
# an image made private or flagged NSFW stops being served to others from a cache within minutes.
IMAGINEER_BROWSER_CACHE_SECONDS = env.int("IMAGINEER_BROWSER_CACHE_SECONDS", default=86400)
IMAGINEER_SHARED_CACHE_SECONDS = env.int("IMAGINEER_SHARED_CACHE_SECONDS", default=300)
# The multipart body may be a little larger than the file it carries.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Generation -----------------------------------------------------------------------------
# Operator-tunable defaults; each model can override steps/guidance/size/scheduler/negative prompt.
IMAGINEER_GENERATION_DEFAULTS = {
    "steps": env.int("IMAGINEER_GENERATION_STEPS", default=30),
    "guidance_scale": env.float("IMAGINEER_GENERATION_GUIDANCE_SCALE", default=7.5),
    "scheduler": env.str("IMAGINEER_GENERATION_SCHEDULER", default="dpmpp_2m_karras"),
    "negative_prompt": env.str("IMAGINEER_GENERATION_NEGATIVE_PROMPT", default="blurry, low quality"),
}
IMAGINEER_GENERATION_RATE = env.str("IMAGINEER_GENERATION_RATE", default="10/m")
IMAGINEER_GENERATION_MAX_BATCH = env.int("IMAGINEER_GENERATION_MAX_BATCH", default=4)
IMAGINEER_SET_RUN_BATCH_SIZE = env.int("IMAGINEER_SET_RUN_BATCH_SIZE", default=4)
IMAGINEER_PIPELINE_CACHE_SIZE = env.int("IMAGINEER_PIPELINE_CACHE_SIZE", default=2)
IMAGINEER_ATTENTION_SLICING = env.bool("IMAGINEER_ATTENTION_SLICING", default=False)
IMAGINEER_VAE_TILING = env.bool("IMAGINEER_VAE_TILING", default=False)
IMAGINEER_DEVICE = env.str("IMAGINEER_DEVICE", default="auto")  # auto | cuda | mps | cpu
# Offline: hub models load only from the local Hugging Face cache (HF_HUB_OFFLINE is the hub's own).
IMAGINEER_HF_OFFLINE = env.bool("HF_HUB_OFFLINE", default=False)
IMAGINEER_MODELS_DIR = Path(env.str("IMAGINEER_MODELS_DIR", default=str(DATA_DIR / "models")))
IMAGINEER_LORA_MAX_BYTES = env.int("IMAGINEER_LORA_MAX_BYTES", default=1024 * 1024 * 1024)

# --- Labeling -------------------------------------------------------------------------------
# claude | nudenet | auto (Claude whenever an API key is set, else the offline NudeNet detector).
IMAGINEER_LABELER = env.str("IMAGINEER_LABELER", default="auto")
# The SDK's own variables: the key, and an endpoint other than Anthropic's (a proxy, a test server).
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
IMAGINEER_CLAUDE_MODEL = env.str("IMAGINEER_CLAUDE_MODEL", default="claude-sonnet-4-5")
IMAGINEER_CLAUDE_TIMEOUT_SECONDS = env.float("IMAGINEER_CLAUDE_TIMEOUT_SECONDS", default=60.0)
# Retries on 429, 5xx and overloaded, with exponential back-off (the SDK's; honours Retry-After).
IMAGINEER_CLAUDE_MAX_RETRIES = env.int("IMAGINEER_CLAUDE_MAX_RETRIES", default=4)
IMAGINEER_CLAUDE_MAX_TOKENS = env.int("IMAGINEER_CLAUDE_MAX_TOKENS", default=1024)
# Longest side sent to the API: beyond ~1568 px the API scales images down itself (and charges for it).
IMAGINEER_CLAUDE_MAX_IMAGE_SIDE = env.int("IMAGINEER_CLAUDE_MAX_IMAGE_SIDE", default=1568)
# NudeNet detection scores from which a class decides the rating (labeling/labelers/nudenet.py).
IMAGINEER_NUDENET_EXPLICIT_THRESHOLD = env.float("IMAGINEER_NUDENET_EXPLICIT_THRESHOLD", default=0.5)
IMAGINEER_NUDENET_ADULT_THRESHOLD = env.float("IMAGINEER_NUDENET_ADULT_THRESHOLD", default=0.5)
IMAGINEER_NUDENET_SUGGESTIVE_THRESHOLD = env.float("IMAGINEER_NUDENET_SUGGESTIVE_THRESHOLD", default=0.5)

# --- Legacy import ----------------------------------------------------------------------------
# Rows of this many new images go in one transaction: a commit and a few bulk statements per batch
# instead of a dozen statements per image. A crash loses at most one batch's rows, whose files the
# next run writes again under the same names.
IMAGINEER_LEGACY_IMPORT_BATCH = env.int("IMAGINEER_LEGACY_IMPORT_BATCH", default=200)

# --- Operations (imagineer/ops) -------------------------------------------------------------
# The runtime config file: operator-tunable defaults (imagineer/core/runtime_config.py). A missing
# file means every default; docs/config.example.yaml lists every key.
IMAGINEER_CONFIG = Path(env.str("IMAGINEER_CONFIG", default=str(DATA_DIR / "config.yaml")))
# Disk alerts: the default threshold (the runtime config may change it), and where alerts go.
IMAGINEER_DISK_ALERT_PERCENT = env.float("IMAGINEER_DISK_ALERT_PERCENT", default=85.0)
# A Slack-compatible incoming webhook (a secret: it is a credential in its own URL). Empty: no webhook.
IMAGINEER_ALERT_WEBHOOK_URL = env.str("IMAGINEER_ALERT_WEBHOOK_URL", default="")
IMAGINEER_ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("IMAGINEER_ALERT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Directories of other deployments' parts that disk stats also watch (media subfolders are always).
IMAGINEER_TRAINING_DIR = Path(env.str("IMAGINEER_TRAINING_DIR", default=str(DATA_DIR / "training")))
IMAGINEER_SCRATCH_DIR = Path(env.str("IMAGINEER_SCRATCH_DIR", default=str(DATA_DIR / "scratch")))
# Training runs started per admin (django-ratelimit rate); runs at once: runtime config training.max_active_runs.
IMAGINEER_TRAINING_START_RATE = env.str("IMAGINEER_TRAINING_START_RATE", default="4/h")
# The program a training run starts as its child process (`python -m <module>`); tests swap in a
# trainer that hangs to prove the guards.
IMAGINEER_TRAINER_MODULE = env.str("IMAGINEER_TRAINER_MODULE", default="training.trainer")
# Scraping: hosts the private-network guard lets through although they resolve to loopback or
# private addresses (comma-separated host names or IPs, e.g. an intranet gallery). Empty: none.
IMAGINEER_SCRAPE_ALLOWED_HOSTS = env.list("IMAGINEER_SCRAPE_ALLOWED_HOSTS", default=[])
# Bug reports: submissions per admin (django-ratelimit rate).
IMAGINEER_BUG_REPORT_RATE = env.str("IMAGINEER_BUG_REPORT_RATE", default="30/h")
# Mail (alerts): EMAIL_URL names the backend, e.g. smtp+tls://user:password@host:587. Development
# prints mail to the console; production never does (a whole e-mail, recipients included, would
# land in the log) and sends none until EMAIL_URL is set (a deploy check warns).
_email = env.email("EMAIL_URL", default="dummymail://" if IS_PRODUCTION else "consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="imagineer@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Authentication -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
IMAGINEER_ADMIN_EMAILS = [e.lower() for e in env.list("IMAGINEER_ADMIN_EMAILS", default=[])]
LOGIN_REDIRECT_URL = "/admin/"
ACCOUNT_ADAPTER = "imagineer.core.auth.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "imagineer.core.auth.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if IS_PRODUCTION else "http"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_STORE_TOKENS = False
GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "SCOPE": ["openid", "profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
        "FETCH_USERINFO": True,
        "VERIFIED_EMAIL": False,
    }
}
if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET:
    # Credentials from the environment; otherwise an operator adds a SocialApp in admin (not both).
    SOCIALACCOUNT_PROVIDERS["google"]["APP"] = {"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET}

# Who gets an account at their first Google sign-in (imagineer/core/signup.py, docs/SECURITY.md):
# closed (default): IMAGINEER_ADMIN_EMAILS and invited addresses only; allowlist: also verified
# addresses in IMAGINEER_SIGNUP_EMAILS or at a domain in IMAGINEER_SIGNUP_DOMAINS; open: anybody.
IMAGINEER_SIGNUP = env.str("IMAGINEER_SIGNUP", default="closed").strip().lower()
IMAGINEER_SIGNUP_EMAILS = [e.strip().lower() for e in env.list("IMAGINEER_SIGNUP_EMAILS", default=[]) if e.strip()]
IMAGINEER_SIGNUP_DOMAINS = [
    d.strip().lower().lstrip("@") for d in env.list("IMAGINEER_SIGNUP_DOMAINS", default=[]) if d.strip()
]
# Days an invitation stays usable, and whom the "sign-up is closed" page tells people to ask.
IMAGINEER_INVITE_DAYS = env.int("IMAGINEER_INVITE_DAYS", default=14)
IMAGINEER_SIGNUP_CONTACT = env.str("IMAGINEER_SIGNUP_CONTACT", default="")

# --- Nothing public before an NSFW check (labeling.autocheck, docs/SECURITY.md) ---------------
# On: every new image that would be public is checked on the labeling queue first and stays
# visible only to its owner and admins until the check has passed. Off: the earlier behaviour.
IMAGINEER_NSFW_AUTOCHECK = env.bool("IMAGINEER_NSFW_AUTOCHECK", default=True)

# --- A separate web frontend (CORS) -----------------------------------------------------------
# Origins (scheme://host[:port]) whose pages may call the API with credentials. Empty: none.
IMAGINEER_CORS_ALLOWED_ORIGINS = env.list("IMAGINEER_CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = IMAGINEER_CORS_ALLOWED_ORIGINS
CORS_ALLOW_CREDENTIALS = True
# The API, allauth's headless sign-in for browsers, and nothing else (never the admin).
CORS_URLS_REGEX = r"^/(api|_allauth)/.*$"
CORS_EXPOSE_HEADERS = ["Retry-After", "Location", "X-Request-ID"]
# A page on an allowed origin posts with the CSRF token it read from /api/auth/csrf.
CSRF_TRUSTED_ORIGINS = [*CSRF_TRUSTED_ORIGINS, *IMAGINEER_CORS_ALLOWED_ORIGINS]
HEADLESS_CLIENTS = ("browser",)
HEADLESS_ONLY = False

# --- Proxy / TLS ----------------------------------------------------------------------------
# Behind a TLS-terminating proxy, trust its X-Forwarded-Proto/Host so absolute URLs (OAuth
# callbacks included) are https. Only turn on when a proxy you control sets these headers.
IMAGINEER_TRUST_PROXY_HEADERS = env.bool("IMAGINEER_TRUST_PROXY_HEADERS", default=IS_PRODUCTION)
if IMAGINEER_TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 24 * 3600
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API client gets 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["imagineer.core.permissions.AdminWriteVisibleRead"],
    "DEFAULT_PAGINATION_CLASS": "imagineer.core.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "imagineer.core.schema.ErrorAwareAutoSchema",
    "EXCEPTION_HANDLER": "imagineer.core.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # One request content type per operation (a generated client gets one body type): JSON, and
    # multipart/form-data only on the actions that take a file (imagineer/core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_METADATA_CLASS": "imagineer.core.parsers.UploadAwareMetadata",  # OPTIONS names multipart there
    # An unknown ?format= or an Accept header no renderer meets: 406 naming what would do.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "imagineer.core.negotiation.ContentNegotiation",
}
IMAGINEER_PAGE_SIZE = env.int("IMAGINEER_PAGE_SIZE", default=50)
IMAGINEER_MAX_PAGE_SIZE = env.int("IMAGINEER_MAX_PAGE_SIZE", default=200)

SPECTACULAR_SETTINGS = {
    "TITLE": "Imagineer API",
    "DESCRIPTION": "Stable Diffusion operations backend: albums, images, jobs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imagineer.core.schema.name_inline_enums",
        "imagineer.core.schema.declare_error_envelope",
    ],
    # Two choice sets share the field name `status`: name each enum after what it is.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "imagineer.core.models.JobStatus",
        "BugReportStatusEnum": "imagineer.ops.models.bug_reports.BugReportStatus",
        "ImageSourceEnum": "albums.models.ImageSource",  # an image and an upload's answer share it
    },
}

CSRF_FAILURE_VIEW = "imagineer.core.errors.csrf_failure"

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a folder of message files, no server (embedded default).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        # The worker polls the folder: a short interval keeps queue latency small next to a job.
        "polling_interval": env.float("IMAGINEER_BROKER_POLL_SECONDS", default=0.1),
    }
    # Remote control (celery inspect/control) would poll a second folder all the time; on one
    # embedded machine operators use the admin instead, so the CPU goes to the jobs.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = env.bool("IMAGINEER_WORKER_REMOTE_CONTROL", default=False)
    for _folder in ("queue", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_WORKER_CONCURRENCY = env.int("IMAGINEER_WORKER_CONCURRENCY", default=2)
# Seconds (soft, hard) per queue; applied to every task routed there (imagineer/celery.py).
CELERY_QUEUE_TIME_LIMITS = {
    "default": (
        env.int("CELERY_DEFAULT_SOFT_TIME_LIMIT", default=300),
        env.int("CELERY_DEFAULT_TIME_LIMIT", default=360),
    ),
    "generation": (
        env.int("CELERY_GENERATION_SOFT_TIME_LIMIT", default=1800),
        env.int("CELERY_GENERATION_TIME_LIMIT", default=1900),
    ),
    "training": (
        env.int("CELERY_TRAINING_SOFT_TIME_LIMIT", default=5 * 3600),
        env.int("CELERY_TRAINING_TIME_LIMIT", default=5 * 3600 + 300),
    ),
    "scraping": (
        env.int("CELERY_SCRAPING_SOFT_TIME_LIMIT", default=2 * 3600),
        env.int("CELERY_SCRAPING_TIME_LIMIT", default=2 * 3600 + 120),
    ),
    "labeling": (
        env.int("CELERY_LABELING_SOFT_TIME_LIMIT", default=2 * 3600),
        env.int("CELERY_LABELING_TIME_LIMIT", default=2 * 3600 + 120),
    ),
    "maintenance": (
        env.int("CELERY_MAINTENANCE_SOFT_TIME_LIMIT", default=1800),
        env.int("CELERY_MAINTENANCE_TIME_LIMIT", default=1900),
    ),
}
# Jobs whose heartbeat is older than this are reaped (marked failed) by the beat task.
IMAGINEER_JOB_HEARTBEAT_SECONDS = env.int("IMAGINEER_JOB_HEARTBEAT_SECONDS", default=15)
IMAGINEER_JOB_STALE_AFTER_SECONDS = env.int("IMAGINEER_JOB_STALE_AFTER_SECONDS", default=300)
# Queued jobs whose message no live worker holds (docs/JOBS.md "Lost messages"): every
# IMAGINEER_JOB_SWEEP_SECONDS beat runs the sweep (and the reaper); a job sent at least
# IMAGINEER_JOB_RESEND_AFTER_SECONDS ago that the sweep finds lost is sent again, at most
# IMAGINEER_JOB_MAX_RESENDS times, and then failed with the reason.
IMAGINEER_JOB_SWEEP_SECONDS = env.float("IMAGINEER_JOB_SWEEP_SECONDS", default=60.0)
IMAGINEER_JOB_RESEND_AFTER_SECONDS = env.float("IMAGINEER_JOB_RESEND_AFTER_SECONDS", default=180.0)
IMAGINEER_JOB_MAX_RESENDS = env.int("IMAGINEER_JOB_MAX_RESENDS", default=3)
# Every worker reports what it holds this often (imagineer/core/workers.py); a worker silent for
# IMAGINEER_WORKER_STALE_AFTER_SECONDS is dead, and the job messages it held are lost.
IMAGINEER_WORKER_HEARTBEAT_SECONDS = env.float("IMAGINEER_WORKER_HEARTBEAT_SECONDS", default=10.0)
IMAGINEER_WORKER_STALE_AFTER_SECONDS = env.float("IMAGINEER_WORKER_STALE_AFTER_SECONDS", default=45.0)
# Beat's own entries (policies' schedules are rows of django-celery-beat). Expires: when no
# maintenance worker runs, beat must not pile up a message per interval.
CELERY_BEAT_SCHEDULE = {
    name: {
        "task": task,
        "schedule": IMAGINEER_JOB_SWEEP_SECONDS,
        "options": {"expires": IMAGINEER_JOB_SWEEP_SECONDS * 0.9},
    }
    for name, task in (
        ("reap-stale-jobs", "imagineer.core.tasks.reap_stale_jobs"),
        ("resend-lost-jobs", "imagineer.core.tasks.resend_lost_jobs"),
        # Images waiting for their NSFW check whose check job was lost or failed are checked again.
        ("sweep-nsfw-checks", "labeling.tasks.sweep_nsfw_checks"),
    )
}

# --- Logging --------------------------------------------------------------------------------
# docs/LOGGING.md. LOG_FORMAT: json (JSON lines, the production default) or console (readable).
# LOG_LEVELS: per-logger levels, e.g. "celery=WARNING,imagineer.request=INFO".
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if IS_PRODUCTION else "console").lower()

from imagineer.core.logging import build_logging_config, parse_logger_levels  # noqa: E402  (needs the values above)

LOG_LEVELS = parse_logger_levels(env.str("LOG_LEVELS", default=""))
LOGGING = build_logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT, logger_levels=LOG_LEVELS)
