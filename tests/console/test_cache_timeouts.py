"""A Redis that accepts connections and then never answers: cache calls give up within about a
second instead of hanging the request, push or rate limit that made them."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings

from console.redis_cache import RedisCache


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A TCP server that accepts and reads, and never writes a byte back."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_cache_call_to_a_redis_that_never_answers_gives_up(silent_redis: int) -> None:
    cache = RedisCache(
        f"redis://127.0.0.1:{silent_redis}/0", {"OPTIONS": settings.REDIS_CACHE_OPTIONS}
    )
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
        cache.get("approvals.realtime.reviewers_listening")
    # Without the timeouts the call waited for as long as the socket stayed open.
    assert time.monotonic() - started < 5


def test_the_redis_cache_is_configured_with_those_timeouts() -> None:
    if "Redis" not in settings.CACHES["default"]["BACKEND"]:
        pytest.skip("embedded: the cache is in the process's memory")
    assert settings.CACHES["default"]["OPTIONS"] == settings.REDIS_CACHE_OPTIONS
