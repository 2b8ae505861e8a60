"""Development (`make run`): DEBUG on, a per-checkout secret key generated under var/."""

import secrets

from .base import *  # noqa: F403
from .base import BASE_DIR, env, secret

DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


def _local_secret_key() -> str:
    # Never a key in the code: a random one is made once per checkout and kept out of git (var/).
    path = BASE_DIR / "var" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = secret("SECRET_KEY") or _local_secret_key()
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
CER_SMS_BACKEND = "apps.notifications.channels.ConsoleSmsGateway"
CER_DEMO_DATA = True
