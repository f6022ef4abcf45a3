"""Redis down under parked long polls: they notice a decision by reading, a second or two late.

channels_redis retries its subscription quietly while Redis is away, so a poll parked on it
heard nothing until its timeout (30 s), and a decision made meanwhile could not be pushed. Real
Redis of the test's own, stopped and started; real database reads.
"""

import asyncio
import time

import pytest

from approvals import realtime
from tests.redis_server import own_redis

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_poll_parked_when_redis_goes_reads_instead_and_recovers(settings) -> None:
    with own_redis() as redis_server:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [redis_server.url], "prefix": "redis-down"},
            }
        }

        async def scenario() -> tuple[float, int, float]:
            decided = False
            reads = 0

            async def is_resolved() -> bool:
                nonlocal reads
                reads += 1
                return decided

            loop = asyncio.get_running_loop()
            poll = asyncio.create_task(
                realtime.wait_until_resolved(code="parked", timeout=30, is_resolved=is_resolved)
            )
            while not realtime._listeners.get(loop) or not realtime._listeners[loop].waiters:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(redis_server.stop)
            # A decision recorded while Redis is down: its push cannot be sent.
            await asyncio.sleep(0)
            decided_at = time.monotonic()
            decided = True
            await asyncio.wait_for(poll, timeout=10)
            noticed_after = time.monotonic() - decided_at
            reads_while_down = reads

            # Redis back: the next poll subscribes afresh (channels_redis reconnects by itself).
            await asyncio.to_thread(redis_server.start)
            started = time.monotonic()
            await realtime.wait_until_resolved(
                code="after", timeout=0.5, is_resolved=lambda: asyncio.sleep(0, False)
            )
            listener = realtime._listeners[loop]
            assert not listener.broken
            return noticed_after, reads_while_down, time.monotonic() - started

        noticed_after, reads, _ = asyncio.run(scenario())

    # Noticed by a read, a second or two after the decision, not at the 30 s timeout.
    assert noticed_after < 4, f"noticed after {noticed_after:.1f} s"
    # Bounded: about one read a second, never a tight loop.
    assert reads <= 2 + noticed_after * 1.5
