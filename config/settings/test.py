"""Tests: real PostgreSQL and Redis from DATABASE_URL / REDIS_URL (`make test` provides them)."""

import os
import secrets

from . import _xdist  # noqa: F401  (before base: it moves REDIS_URL per xdist worker)
from .base import *  # noqa: F403
from .base import BASE_DIR, CACHES, LOGGING, secret

SECRET_KEY = secret("SECRET_KEY") or secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CER_SMS_BACKEND = "apps.notifications.channels.MemorySmsGateway"
# Tasks enqueued with on_commit run in-process in tests (assert them with django_capture_on_commit_callbacks).
CELERY_TASK_ALWAYS_EAGER = True
CACHES["default"]["KEY_PREFIX"] = "cer-test"

# The whole run's log as JSON lines; tests/conftest.py scans it for personal data when the run ends.
# One file per process of the run: the first process to load these settings names the run, and the
# xdist workers it starts inherit the name; the main process scans every file of its run at the end.
TEST_RUN = os.environ.setdefault("CER_TEST_RUN", str(os.getpid()))
TEST_LOG_DIR = BASE_DIR / "var" / "test-logs"
TEST_LOG_FILE = TEST_LOG_DIR / f"pytest-{TEST_RUN}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl"
TEST_LOG_DIR.mkdir(parents=True, exist_ok=True)
LOGGING["handlers"]["testrun"] = {  # type: ignore[index]
    "class": "logging.FileHandler",
    "filename": str(TEST_LOG_FILE),
    "formatter": "json",
    "filters": ["context"],
}
LOGGING["root"]["handlers"].append("testrun")  # type: ignore[index]
CER_SIGNIN_MIN_SECONDS = 0.0  # the floor's effect is measured, not asserted in tests
CER_DEMO_DATA = True

# The open-data limit is tested with its own override; other tests may call the resource quickly.
CER_OPENDATA_RATE_LIMIT = 1000
