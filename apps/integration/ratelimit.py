"""Per-client rate limit in Redis: a fixed window counter shared by every web instance."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


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
    now = int(time.time())
    window_start = now - now % window
    key = f"api-rate:{client_id}:{window_start}"
    # add() is a no-op when the key exists; incr() is atomic in Redis, so concurrent requests of one
    # client on several web instances count exactly.
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, timeout=window + 1)
        count = 1
    reset = max(1, window_start + window - now)
    return RateState(limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit)
