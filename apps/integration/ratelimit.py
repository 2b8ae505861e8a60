"""Per-client rate limit in Redis: a fixed window counter shared by every web instance.

INCR and EXPIRE pipelined on the cache's own Redis client; for a facility system whose principal is
cached in the process, the authentication queues them in its own round trip (`rate_limit_queue`),
so an API call pays one Redis round trip for both (docs/performance.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.core.cache import redis_client


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    exceeded: bool
    window: int = 60  # seconds
    policy: str = "client"  # the policy's name in the headers

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-09, Structured Fields):
        `RateLimit-Policy: "client";q=600;w=60` (quota per window) and `RateLimit: "client";r=599;t=42`
        (remaining, seconds to the reset)."""
        return {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset}',
        }


REQUEST_ATTRIBUTE = "cer_api_rate"  # a RateState counted by the authentication, on the HttpRequest


def _settings() -> tuple[int, int]:
    limit = int(getattr(settings, "CER_API_RATE_LIMIT", 600))
    window = max(1, int(getattr(settings, "CER_API_RATE_WINDOW", 60)))
    return limit, window


def rate_limit_hit(*, client_id: int) -> RateState:
    limit, window = _settings()
    return window_hit(key=f"cer:api-rate:{client_id}", limit=limit, window=window)


def rate_limit_queue(pipe: Any, *, client_id: int) -> Callable[[list[Any]], RateState]:
    """Queue one hit of the client on `pipe` (INCR, EXPIRE); the returned function reads the state
    from the pipeline's results for those two commands."""
    limit, window = _settings()
    return _window_queue(pipe, key=f"cer:api-rate:{client_id}", limit=limit, window=window)


def rate_limit_for_request(request: Any, *, client_id: int) -> RateState:
    """The hit the authentication already counted for this request, or one counted now."""
    counted = getattr(getattr(request, "_request", request), REQUEST_ATTRIBUTE, None)
    return counted if isinstance(counted, RateState) else rate_limit_hit(client_id=client_id)


def _window_queue(pipe: Any, *, key: str, limit: int, window: int) -> Callable[[list[Any]], RateState]:
    now = int(time.time())
    window_start = now - now % window
    # INCR is atomic in Redis, so concurrent requests of one client on several web instances count
    # exactly; the key of a window lives one second longer than the window.
    pipe.incr(f"{key}:{window_start}")
    pipe.expire(f"{key}:{window_start}", window + 1)
    reset = max(1, window_start + window - now)

    def state(results: list[Any]) -> RateState:
        count = int(results[0])
        return RateState(
            limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit, window=window
        )

    return state


def window_hit(*, key: str, limit: int, window: int) -> RateState:
    """Count one event under `key` in the current fixed window of `window` seconds."""
    pipe = redis_client().pipeline(transaction=False)
    state = _window_queue(pipe, key=key, limit=limit, window=window)
    return state(pipe.execute())
