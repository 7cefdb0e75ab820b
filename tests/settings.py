"""Test settings: the production settings module with a scratch folder and fast hashing.

The scratch folder is shared with the Celery worker processes the tests start (they inherit
READERSTUDY_TEST_DIR), so worker and tests see the same images, database file and broker.
"""

import os
import tempfile
from pathlib import Path

os.environ["DJANGO_READ_DOT_ENV"] = "false"  # hermetic: only real environment variables count
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")
TEST_DIR = Path(
    os.environ.setdefault("READERSTUDY_TEST_DIR", tempfile.mkdtemp(prefix="readerstudy-tests-"))
)
os.environ.setdefault("READERSTUDY_DATA_DIR", str(TEST_DIR))

from readerstudy.config.settings import *  # noqa: E402, F403, TID251 (tests extend the real settings)
from readerstudy.config.settings import DATABASES, STORAGES  # noqa: E402, TID251

MEDIA_ROOT = TEST_DIR / "media"
# The test process closes its connections itself (persistent ones would outlive the test
# database); servers the tests start get the production default through the environment.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DATABASE_CONN_MAX_AGE", "0"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's in-memory default, so that a worker process can open it.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_DIR / "test-db.sqlite3")}

# Templates resolve {% static %} without a collectstatic manifest; whitenoise finds files itself.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
# The test client and the browser tests speak plain HTTP to a local server.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
# A fixed metric set, whatever weights this machine has: the pixel metrics and one offline DFD;
# a worker a test starts configured otherwise (a split deployment) names its own.
METRICS_ENABLED = METRICS_ENABLED or ["psnr", "ssim", "nmse", "dfd-resnet50-random"]  # noqa: F405
# Fewer bootstrap resamples and a faster poll keep the dashboard tests quick.
DASHBOARD_BOOTSTRAP = 200
DASHBOARD_POLL_MS = 500
DASHBOARD_MIN_REFRESH_S = 0.0
# A poll sees a new score at once (test_dashboard tests the cached check on its own).
DASHBOARD_VERSION_TTL_S = 0.0
