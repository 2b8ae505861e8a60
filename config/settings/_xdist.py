"""One Redis database per pytest-xdist worker (`make test` runs the suite on several workers).

Tests clear the cache between them, so two workers sharing a Redis database would empty each other's
in the middle of a test. Each worker moves REDIS_URL to the next databases after the one given, in the
environment too, so servers and workers a test starts as subprocesses use the same one.
PostgreSQL needs nothing here: pytest-django gives each worker its own test database.
"""

import os
from urllib.parse import urlsplit, urlunsplit

_REDIS_DATABASES = 16  # Redis's default `databases`


def worker_redis_url(url: str, worker: str) -> str:
    """redis://host:port/N for worker gwK -> database N + 1 + K (modulo Redis's 16)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    database = (base + 1 + int(worker.removeprefix("gw"))) % _REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{database}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("REDIS_URL") and not os.environ.get("CER_XDIST_REDIS_MOVED"):
    os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], _worker)
    os.environ["CER_XDIST_REDIS_MOVED"] = "1"  # a subprocess importing these settings keeps it
