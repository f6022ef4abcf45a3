"""Fixed-window rate limits for AAP (7_async.md "Abuse Prevention").

Counts live in Django's cache: shared through Redis when REDIS_URL is set, per process otherwise.
The numbers are settings (AAP_LIMIT_*) and documented in docs/protocols.md.

When the shared cache cannot be reached (Redis down), each process counts on its own until it is
back: the limits still hold, per server process, and requests are still created. Refusing every
request for want of a counter would turn a Redis outage into an AAP outage (it was a 500), and
dropping the limits would open the receiver verifications they guard.
"""

import logging
import time

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

from console.errors import DomainError

logger = logging.getLogger(__name__)

_in_this_process = LocMemCache("aap-limits-while-the-cache-is-down", {"MAX_ENTRIES": 10_000})
_shared_cache_down = False


class RateLimited(DomainError):
    code = "rate_limited"
    http_status = 429
    retry_after: int

    def __init__(self, *, what: str, retry_after: int) -> None:
        super().__init__(f"Too many {what}; retry after {retry_after} seconds.")
        self.retry_after = retry_after


def limit_count(*, scope: str, what: str, limit: int, window_seconds: int) -> None:
    """Count one event in `scope`; raise RateLimited once the window's limit is exceeded."""
    now = time.time()
    key = f"aap-limit:{scope}:{int(now // window_seconds)}"
    count = _count_shared(key, window_seconds)
    if count > limit:
        raise RateLimited(what=what, retry_after=max(1, int(window_seconds - now % window_seconds)))


def _count_shared(key: str, window_seconds: int) -> int:
    global _shared_cache_down
    try:
        count = _count(cache, key, window_seconds)
    except Exception as error:  # the cache backend's own errors (redis ConnectionError, ...)
        if not _shared_cache_down:
            # Once per outage: at a thousand requests a second a line each would bury the log.
            logger.warning(
                "rate-limit counters unreachable (%s: %s); counting in each process until back",
                type(error).__name__,
                error,
            )
        _shared_cache_down = True
        return _count(_in_this_process, key, window_seconds)
    if _shared_cache_down:
        logger.warning("rate-limit counters reachable again")
        _shared_cache_down = False
    return count


def _count(store: BaseCache, key: str, window_seconds: int) -> int:
    store.add(key, 0, timeout=window_seconds + 1)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr: this is the first event of a window
        store.set(key, 1, timeout=window_seconds + 1)
        return 1
