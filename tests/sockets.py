"""Reading what the console pushes to a reviewer's websocket."""

import asyncio
import time
from typing import Any

from approvals.realtime import sockets


async def messages_until(ws: Any, needle: str, timeout: float = 5.0) -> list[str]:
    """Every message received up to and including the first that contains `needle`."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no message containing {needle!r} in {timeout} s: {seen}")
        try:
            message = await asyncio.wait_for(ws.recv(), timeout=remaining)
        except TimeoutError:
            raise AssertionError(
                f"no message containing {needle!r} in {timeout} s: {seen}"
            ) from None
        seen.append(message)
        if needle in message:
            return seen


async def next_message_containing(ws: Any, needle: str, timeout: float = 5.0) -> str:
    """The first message that contains `needle`; those before it are skipped."""
    return (await messages_until(ws, needle, timeout))[-1]


def live_reviewer_sockets() -> sockets.ReviewerSockets:
    """The live console's reviewer sockets (its server runs one event loop, in its own thread)."""
    (hub,) = [hub for hub in sockets._hubs.values() if hub.members]
    return hub


def live_consumers(group: str) -> list[Any]:
    """The consumers of the live console's sockets open in `group` now."""
    return list(live_reviewer_sockets().members.get(group, ()))
