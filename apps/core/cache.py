"""The Redis cache backend, with one client object per connection pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` (and its table of about 170 response
callbacks) for every cache call: a measurable share of an API request, which reads its caller's
principal from the cache (docs/performance.md). One per pool is enough (Django gives each thread its
own backend and pool); everything else is Django's backend unchanged.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.cache import caches
from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def redis(self) -> Any:
        """This cache's `redis.Redis` (the server it writes to), for what the cache API lacks, such as
        pipelines; keys used through it get no cache prefix or version."""
        return self._cache.get_client(write=True)


def redis_client() -> Any:
    """The `redis.Redis` of the default cache: the one Redis connection pool of a thread."""
    return cast(RedisCache, caches["default"]).redis()
