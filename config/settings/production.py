"""Production: everything required comes from the environment; a gap stops the start in one line.

Required: SECRET_KEY, DATABASE_URL, REDIS_URL, ALLOWED_HOSTS, CER_PUBLIC_URL. Each may also be given as a file
through `<VAR>_FILE`. Embedded servers are never started here.
"""

import re

from .base import *  # noqa: F403
from .base import DATABASES, database_from_url, env
from .env import ConfigError, fail, required

try:
    SECRET_KEY = required("SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise ConfigError("SECRET_KEY is malformed: use at least 50 random characters")
    DATABASES["default"] = database_from_url(required("DATABASE_URL"))
    # A transaction left open holds back the outbox horizon (changes feed, webhooks, notifications)
    # for the whole cluster: no session of ours may sit idle inside one.
    DATABASES["default"]["OPTIONS"]["options"] += " -c idle_in_transaction_session_timeout=60000"
    _redis_url: str = required("REDIS_URL")
    REDIS_URL = _redis_url
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ConfigError("ALLOWED_HOSTS is required (comma-separated host names)")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    # Every SMS and e-mail carries a signed link to the patient pages: never a development address.
    CER_PUBLIC_URL = required("CER_PUBLIC_URL").rstrip("/")
    if not re.fullmatch(r"https://[^/\s?#]+(/[^\s?#]*)?", CER_PUBLIC_URL):
        raise ConfigError("CER_PUBLIC_URL is malformed: the patient pages' https:// address")
except (ConfigError, ValueError) as exc:
    fail(exc if isinstance(exc, ConfigError) else ConfigError(str(exc)))

CACHES = {
    "default": {
        "BACKEND": "apps.core.cache.RedisCache",
        "LOCATION": _redis_url,
        "KEY_PREFIX": "cer",
    }
}
CELERY_BROKER_URL = _redis_url
DEBUG = False
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
CER_SMS_BACKEND = env.str("CER_SMS_BACKEND", default="apps.notifications.channels.LogSmsGateway")
CER_PATIENT_CODE_SIGNIN = env.bool("CER_PATIENT_CODE_SIGNIN", default=False)
