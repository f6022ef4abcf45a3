"""Fixed-window rate limits for AAP (7_async.md "Abuse Prevention").

Counts live in Django's cache: shared through Redis when REDIS_URL is set, per process otherwise.
The numbers are settings (AAP_LIMIT_*) and documented in docs/protocols.md.
"""

import time

from django.core.cache import cache

from console.errors import DomainError


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
    cache.add(key, 0, timeout=window_seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this is the first event of a window
        cache.set(key, 1, timeout=window_seconds + 1)
        count = 1
    if count > limit:
        raise RateLimited(what=what, retry_after=max(1, int(window_seconds - now % window_seconds)))
