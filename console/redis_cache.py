"""Django's Redis cache backend, keeping one Redis client per connection pool.

Why: Django's backend builds a new `redis.Redis` for every operation (`get_client`), and
redis-py's constructor fills a table of a few hundred response callbacks each time: about half
the CPU of a `cache.get` on loopback. The intake writer asks the cache once per batch whether a
reviewer listens, so a lone tool call paid for it on every creation. A client is only a handle
on its pool (redis-py's clients are safe to share between threads); the pools are Django's,
unchanged.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _PooledClients(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own attributes below, not in django-stubs.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            # Two threads may both build one here; either serves, on the same pool.
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    """settings.CACHES' backend when REDIS_URL is set."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _PooledClients
