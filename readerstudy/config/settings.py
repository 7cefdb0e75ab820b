"""Settings for every deployment, read from the environment (and from `.env` when present).

Defaults are for a single machine with nothing installed: SQLite and a Celery broker on SQLite
files under `var/`. Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis or
RabbitMQ); see the README's "Configuration" table. Secrets have no default.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]
env = environ.Env()
# `make demo` writes a local .env (secret key, debug); variables already set take precedence.
if env.bool("DJANGO_READ_DOT_ENV", default=True) and (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

# Runtime state: SQLite database, embedded broker, stored images.
DATA_DIR = Path(env.str("READERSTUDY_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite cannot create the folder of its file

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# DATABASES
# ------------------------------------------------------------------------------
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and a worker process write at once: WAL lets readers proceed during a
    # write, IMMEDIATE takes the write lock up front so transactions queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep connections between requests (a PostgreSQL connection costs milliseconds to open), and
# check one before reuse so a restarted database costs one reconnect, not a failed request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# CACHES
# ------------------------------------------------------------------------------
# The dashboard's analyses are cached per data version. Per-process memory by default; with
# several gunicorn workers set CACHE_URL (e.g. redis://127.0.0.1:6379/1) so they share one.
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-cache-url
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://dashboard")}
# With a shared cache, sessions are read from it (one query less on every request) and
# written through to the database. A per-process memory cache would let a session that ended
# in one worker live on in the others, so without CACHE_URL sessions stay in the database.
SHARED_CACHE = CACHES["default"]["BACKEND"].rsplit(".", 1)[-1] not in {
    "LocMemCache",
    "DummyCache",
}
SESSION_ENGINE = f"django.contrib.sessions.backends.{'cached_db' if SHARED_CACHE else 'db'}"

# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "csp",
    "readerstudy",
    "metrics",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# What pages may load and run: this site's own scripts only, no inline script, no plugin, no
# framing. The viewer decodes DICOM in blob: workers and data: URLs (DESIGN's viewer notes);
# plotly adds <style> elements at run time, so styles alone may be inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "readerstudy.config.urls"
WSGI_APPLICATION = "readerstudy.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# AUTHENTICATION
# ------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "readerstudy:home"
LOGOUT_REDIRECT_URL = "login"
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is locked out for LOGIN_COOLOFF_MINUTES (429 and a page that
# says so). Keying on the pair stops guessing without letting a stranger lock a reader out
# from elsewhere. Attempts are kept in the database (admin: Axes); staff can lift a lockout
# there or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "readerstudy.views.locked_out"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# STATIC AND MEDIA
# ------------------------------------------------------------------------------
# https://whitenoise.readthedocs.io/en/stable/django.html
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "readerstudy.staticstorage.StaticFilesStorage"
        )
    },
}
# Images are never served from MEDIA_URL: views check the reader's right to each item.
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(DATA_DIR / "media")))

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# Production serves HTTPS only (a TLS-terminating proxy sets X-Forwarded-Proto); a loopback
# benchmark or a debug server turns these off through the environment.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
# W021: the HSTS preload directive asks browsers to hard-code the domain, which is the
# operator's decision (DJANGO_HSTS_PRELOAD), not a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
BEHIND_TLS_PROXY = env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The proxies in front of the web server that add to X-Forwarded-For: the client's address is
# the entry that many places from the right (readerstudy/client_ip.py); 0 uses REMOTE_ADDR.
TRUSTED_PROXY_HOPS = env.int("DJANGO_TRUSTED_PROXY_HOPS", default=1 if BEHIND_TLS_PROXY else 0)
AXES_CLIENT_IP_CALLABLE = "readerstudy.client_ip.client_ip"

# CELERY
# ------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Default: kombu's SQLAlchemy transport on a SQLite file, a broker that needs no server.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite3'}"
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Seconds between two polls of the SQLite broker (readerstudy/config/celery.py applies it;
# Redis and RabbitMQ push messages and are not polled).
BROKER_POLLING_INTERVAL = env.float("BROKER_POLLING_INTERVAL", default=0.1)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# The metric lab runs the metric engine too: on the GPU workers' queue.
CELERY_TASK_ROUTES = {
    "metrics.tasks.*": {"queue": "metrics"},
    "readerstudy.tasks.run_metric_lab": {"queue": "metrics"},
}
# One long metrics batch at a time per worker process: no task waits behind a busy sibling.
# A worker that only works through a long metrics queue can take 2: the next case's message is
# then at hand when a case ends, instead of one broker round trip later (docs/deployment.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)

# METRICS
# ------------------------------------------------------------------------------
# Where DFD encoder weights live; `python -m metrics` reads the same variable.
DFD_WEIGHTS_DIR = Path(env.str("DFD_WEIGHTS_DIR", default=str(DATA_DIR / "weights")))
# "auto" uses CUDA when a GPU is visible to the worker, else the CPU.
METRICS_DEVICE = env.str("METRICS_DEVICE", default="auto")
# Slices per forward pass of a DFD encoder: bounds memory whatever the number of pairs.
# Unset: 16 on a GPU, 2 on a CPU (where larger batches only spill out of cache).
METRICS_BATCH_SIZE = env.int("METRICS_BATCH_SIZE", default=None)
# fp32 follows the recipes exactly (no TF32 rounding on a GPU either); tf32 or fp16 (GPU) and
# bf16 (CPU or GPU) run encoders faster with slightly different values, stored under their own
# version.
METRICS_PRECISION = env.str("METRICS_PRECISION", default="fp32")
# torch.compile each encoder and distance (and, on a GPU, the pixel maths) once per worker
# process: about twice the throughput on a GPU (README, Benchmarks), at some seconds of compilation per new image size.
METRICS_COMPILE = env.bool("METRICS_COMPILE", default=False)
# Metric names to compute (comma-separated); empty: every metric whose weights are present.
METRICS_ENABLED = env.list("METRICS_ENABLED", default=[])
# The model whose rows the metrics app scores (as AUTH_USER_MODEL names the user model): the
# metrics app imports nothing of the study app, which imports the metrics app. Its contract is
# in metrics/tasks.py.
METRICS_RECONSTRUCTION_MODEL = "readerstudy.Reconstruction"

# DASHBOARD
# ------------------------------------------------------------------------------
# Bootstrap resamples behind the dashboard's confidence intervals and comparisons.
DASHBOARD_BOOTSTRAP = env.int("DASHBOARD_BOOTSTRAP", default=1000)
# The analysis runs in a thread at this nice value (Linux), so that on a machine it shares
# with web workers it takes only the CPU that readers' requests leave over.
DASHBOARD_ANALYSIS_NICE = env.int("DASHBOARD_ANALYSIS_NICE", default=10)
# How often an open dashboard asks whether the data changed (milliseconds).
DASHBOARD_POLL_MS = env.int("DASHBOARD_POLL_MS", default=2000)
# The analysis is recomputed at most this often (seconds), and never sooner after the last
# than that one took, however many dashboards poll, so that scoring stays fast while a study
# is read (bench-load: at 1 s, twice the analyses and readers' p99 up by a third); new data
# shows within this (or the analysis's time) plus one poll.
DASHBOARD_MIN_REFRESH_S = env.float("DASHBOARD_MIN_REFRESH_S", default=3.0)
# A poll's check for new data (scores, metric values, labels) is made at most this often
# (seconds) per study, however many dashboards poll; the rest are answered from the cache.
DASHBOARD_VERSION_TTL_S = env.float("DASHBOARD_VERSION_TTL_S", default=2.0)
# A queued analysis not finished after this long is taken as lost with its worker and queued
# again by the next poll.
DASHBOARD_ANALYSIS_LOST_S = env.float("DASHBOARD_ANALYSIS_LOST_S", default=180.0)

# REST FRAMEWORK
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["readerstudy.api.parsers.BoundedJSONParser"],
    # The browsable API is a developer's tool: outside debug the API answers JSON only.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    # A database that cannot be reached answers 503 with a sentence, not a 500 page.
    "EXCEPTION_HANDLER": "readerstudy.api.exceptions.exception_handler",
}
API_MAX_BODY_BYTES = 16 * 1024
SPECTACULAR_SETTINGS = {
    # The schema names every endpoint and field: for signed-in users only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "TITLE": "MR reader study API",
    "DESCRIPTION": "Blinded reading and scoring of MR reconstructions.",
    "VERSION": "0.1.0",
}

# RESEARCHERS' UPLOADS AND INVITATIONS
# ------------------------------------------------------------------------------
# An upload is streamed to disk (never held in memory) and unpacked by a worker into
# UPLOADS_DIR/<import id>/, removed once imported. Limits, each refused with a sentence that
# names it: the request's size, the number of files in it (an archive's members included) and
# the size of everything unpacked (a zip bomb stops at this).
UPLOADS_DIR = Path(env.str("READERSTUDY_UPLOADS_DIR", default=str(DATA_DIR / "uploads")))
UPLOADS_DIR.mkdir(parents=True, exist_ok=True)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=8 * 2**30)
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=20_000)
UPLOAD_MAX_UNPACKED_BYTES = env.int("UPLOAD_MAX_UNPACKED_BYTES", default=16 * 2**30)
# What one image or volume may declare, checked from its header before anything is inflated
# (metrics/io/limits.py): 2**24 voxels is 512 x 512 x 64, or a 4096 x 4096 slice.
IMAGE_MAX_VOXELS = env.int("IMAGE_MAX_VOXELS", default=2**24)
# What one upload (or `import_study`) may store, its images as float32: a manifest that names
# one file many times is refused here, row by row, before the image past the limit is read.
UPLOAD_MAX_STORED_BYTES = env.int("UPLOAD_MAX_STORED_BYTES", default=16 * 2**30)
# Files above this size are written to FILE_UPLOAD_TEMP_DIR as they arrive.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
FILE_UPLOAD_TEMP_DIR = str(UPLOADS_DIR)
# Several files in one request (a manifest and its images) are each a form field.
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
# ... and each file's relative path a field beside it (a folder of 20,000 files is 20,000 paths).
DATA_UPLOAD_MAX_NUMBER_FIELDS = UPLOAD_MAX_FILES + 100
# How long an invitation link stays usable.
INVITATION_LIFETIME_DAYS = env.int("INVITATION_LIFETIME_DAYS", default=14)
# Invitations are links to copy; with EMAIL_URL set (e.g. smtp+tls://user:pass@host:587) the
# study's people page can also send them, from DEFAULT_FROM_EMAIL.
EMAIL_ENABLED = bool(env.str("EMAIL_URL", default=""))
if EMAIL_ENABLED:
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="readerstudy@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # django-axes announces itself at every start, which would add a line to every
    # command's output; its records of failed and locked-out sign-ins are kept.
    "loggers": {"axes.apps": {"level": "WARNING"}},
}
