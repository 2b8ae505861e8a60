"""Per-client rate limit in Redis: a fixed window counter shared by every web instance.

One round trip per request (INCR and EXPIRE pipelined) on the cache's own Redis client: the limit
runs on every API call, the booking storm's included."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from apps.core.cache import redis_client


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


def rate_limit_hit(*, client_id: int) -> RateState:
    limit = int(getattr(settings, "CER_API_RATE_LIMIT", 600))
    window = max(1, int(getattr(settings, "CER_API_RATE_WINDOW", 60)))
    return window_hit(key=f"cer:api-rate:{client_id}", limit=limit, window=window)


def window_hit(*, key: str, limit: int, window: int) -> RateState:
    """Count one event under `key` in the current fixed window of `window` seconds."""
    now = int(time.time())
    window_start = now - now % window
    key = f"{key}:{window_start}"
    # INCR is atomic in Redis, so concurrent requests of one client on several web instances count
    # exactly; the key of a window lives one second longer than the window.
    pipe = redis_client().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count = int(pipe.execute()[0])
    reset = max(1, window_start + window - now)
    return RateState(limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit)
