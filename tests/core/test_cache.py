"""The cache backend is Django's Redis cache with its client objects reused."""

import threading

from django.core.cache import cache, caches

from apps.core.cache import RedisCache


def test_the_configured_cache_reuses_one_redis_client_per_pool():
    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    client = backend._cache.get_client(write=True)
    assert backend._cache.get_client() is client
    # Django gives every thread its own cache backend (and pool): the reuse holds in each.
    seen = []

    def other_thread():
        backend = caches["default"]
        seen.extend([backend._cache.get_client(write=True), backend._cache.get_client(write=True)])

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen[0] is seen[1]


def test_it_behaves_as_djangos_redis_cache():
    cache.set("cache-test", {"a": [1, 2]}, timeout=30)
    assert cache.get("cache-test") == {"a": [1, 2]}
    assert cache.get_many(["cache-test", "missing"]) == {"cache-test": {"a": [1, 2]}}
    cache.delete("cache-test")
    assert cache.get("cache-test", "gone") == "gone"
