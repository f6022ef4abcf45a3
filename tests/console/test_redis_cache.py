"""The Redis cache backend (console/redis_cache.py) keeps one client per connection pool: Django's
builds a new one, a few hundred response callbacks' worth of work, for every operation."""

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings

from console.redis_cache import RedisCache
from tests.redis_server import OwnRedis, own_redis


@pytest.fixture
def server() -> Iterator[OwnRedis]:
    with own_redis() as started:
        yield started


@pytest.fixture
def clients_built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every redis.Redis built from here on (the constructor runs as before)."""
    built: list[Any] = []
    original = redis.Redis.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    return built


def _cache(server: OwnRedis) -> RedisCache:
    return RedisCache(server.url, {"OPTIONS": settings.REDIS_CACHE_OPTIONS})


def test_cache_operations_share_one_client(server: OwnRedis, clients_built: list[Any]) -> None:
    cache = _cache(server)
    cache.set("key", "value", 30)
    for _ in range(20):
        assert cache.get("key") == "value"
    assert cache.add("other", 1, 30)
    cache.delete("other")
    assert len(clients_built) == 1  # Django's own backend: one per operation, 23 here


def test_threads_share_the_client_and_each_gets_its_answer(server: OwnRedis) -> None:
    cache = _cache(server)
    answers: dict[int, list[Any]] = {}

    def work(number: int) -> None:
        answers[number] = []
        for round_ in range(50):
            cache.set(f"thread-{number}", round_, 30)
            answers[number].append(cache.get(f"thread-{number}"))

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {number: list(range(50)) for number in range(4)}


def test_a_redis_restarted_meanwhile_is_used_again(server: OwnRedis) -> None:
    cache = _cache(server)
    cache.set("key", "before", 30)
    server.stop()
    with pytest.raises(redis.ConnectionError):
        cache.get("key")
    server.start()  # empty: it keeps nothing on disk
    assert cache.get("key") is None
    cache.set("key", "after", 30)
    assert cache.get("key") == "after"


def test_settings_use_this_backend_with_redis() -> None:
    if not settings.REDIS_URL:
        pytest.skip("embedded: the cache is in the process's memory")
    assert settings.CACHES["default"]["BACKEND"] == "console.redis_cache.RedisCache"
