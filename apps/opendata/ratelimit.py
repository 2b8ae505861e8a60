"""Per-address rate limit of the public open-data resources: a fixed window counter in Redis (the
same scheme as the integration API's per-client limit), shared by every web instance.

The address is REMOTE_ADDR: behind a reverse proxy, the proxy must set it to the client's address
(trusting X-Forwarded-For from anyone would let a client pick its own bucket)."""

from __future__ import annotations

import time

from django.conf import settings

from apps.core.cache import redis_client
from apps.integration.ratelimit import RateState


def address_hit(*, address: str) -> RateState:
    limit = int(getattr(settings, "CER_OPENDATA_RATE_LIMIT", 10))
    window = max(1, int(getattr(settings, "CER_OPENDATA_RATE_WINDOW", 1)))
    now = int(time.time())
    window_start = now - now % window
    key = f"cer:opendata-rate:{address[:64]}:{window_start}"
    pipe = redis_client().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count = int(pipe.execute()[0])
    reset = max(1, window_start + window - now)
    return RateState(
        limit=limit,
        remaining=max(0, limit - count),
        reset=reset,
        exceeded=count > limit,
        window=window,
        policy="address",
    )
