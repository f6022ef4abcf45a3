"""Environment for the console processes a test starts (servers, workers, beat).

They share the suite's Redis server and database, but must never share its broker queues or
channel-layer groups: a worker a test started took the suite's own tasks (CI lost one of
test_request_context's tasks to a worker test_procfile had stopped and that was still shutting
down), and the suite's workers would run tasks those processes queued. Each started group of
processes gets keys of its own.
"""

import os
import uuid


def own_redis_keys(name: str) -> dict[str, str]:
    """Broker and channel-layer key prefixes that no other test or process uses."""
    tag = f"{name}-{uuid.uuid4().hex[:12]}"
    suite_prefix = os.environ.get("CHANNEL_LAYER_PREFIX", "console")
    return {
        "CELERY_BROKER_PREFIX": f"{suite_prefix}-{tag}:",
        "CHANNEL_LAYER_PREFIX": f"{suite_prefix}-{tag}",
    }


def drop_redis_keys(keys: dict[str, str]) -> None:
    """Delete what those processes left in Redis (queued sweeps, bindings), once they are gone."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    try:
        for prefix in (keys["CELERY_BROKER_PREFIX"], keys["CHANNEL_LAYER_PREFIX"]):
            for key in client.scan_iter(match=f"{prefix}*", count=500):
                client.delete(key)
    finally:
        client.close()
