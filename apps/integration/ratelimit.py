"""Per-client rate limit in Redis: a fixed window counter shared by every web instance.

One round trip per request (INCR and EXPIRE pipelined) on a connection pool shared by the process's
threads: the limit runs on every API call, the booking storm's included."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    exceeded: bool

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis() -> redis.Redis:
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.setdefault(url, redis.Redis.from_url(url, socket_timeout=2))
    return client


def rate_limit_hit(*, client_id: int) -> RateState:
    limit = int(getattr(settings, "CER_API_RATE_LIMIT", 600))
    window = max(1, int(getattr(settings, "CER_API_RATE_WINDOW", 60)))
    now = int(time.time())
    window_start = now - now % window
    key = f"cer:api-rate:{client_id}:{window_start}"
    # INCR is atomic in Redis, so concurrent requests of one client on several web instances count
    # exactly; the key of a window lives one second longer than the window.
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count = int(pipe.execute()[0])
    reset = max(1, window_start + window - now)
    return RateState(limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit)
