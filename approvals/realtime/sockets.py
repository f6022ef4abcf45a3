"""Reviewers' sockets in this process: ONE channel-layer channel carries every push to all of them.

Channels gives each consumer a channel of its own: a queue in the layer, a Redis subscription, and
two tasks forever waiting on the socket and on that queue (about 6 KB per idle socket, besides
the push being decoded once per socket). Here the process holds one channel, joined to every
group one of its sockets is in, and one task reading it: each push is decoded once and handed to
the sockets of its group, in the order it was published. Publishers name the group in the event
(`send_to_groups`) because a group message does not say which group it came through.

A group stays joined once a socket of this process needed it, for as long as the process runs:
a few teams at most, and no Redis round trip for every socket that opens or closes.
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from approvals.realtime.groups import RESOLVED_GROUP_RENEW_SECONDS

logger = logging.getLogger("approvals.realtime")

# The event key naming the group a push was sent to.
GROUP_KEY = "group"
# The event each socket gets when the process's subscription has failed (QueueConsumer closes).
SUBSCRIPTION_LOST = "subscription.lost"


class Listener(Protocol):
    def deliver(self, event: dict[str, Any]) -> None:
        """Take an event for this socket; must not block (the next socket is waiting)."""


def send_to_groups(layer: Any, groups: Iterable[str], event: Any) -> None:
    """Publish `event` to each group, naming the group in it (for the receiving processes)."""
    for group in groups:
        async_to_sync(layer.group_send)(group, {**event, GROUP_KEY: group})


class ReviewerSockets:
    """This loop's reviewer sockets by group, and the one channel receiving for all of them."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.members: dict[str, set[Listener]] = {}
        self.joined: dict[str, asyncio.Future[None]] = {}  # group -> its group_add, made once
        self.channel: asyncio.Future[str] = asyncio.ensure_future(layer.new_channel())
        self.receiving: asyncio.Task[None] | None = None

    async def join(self, groups: list[str], listener: Listener) -> None:
        """Returns once this process receives every group's pushes: `listener` gets them."""
        for group in groups:
            self.members.setdefault(group, set()).add(listener)
        channel = await asyncio.shield(self.channel)
        if self.receiving is None:
            self.receiving = asyncio.ensure_future(self._receive(channel))
        for group in groups:
            added = self.joined.get(group)
            if added is None or (added.done() and added.exception() is not None):
                added = self.joined[group] = asyncio.ensure_future(
                    self.layer.group_add(group, channel)
                )
            # Shielded: a socket closing while it waits must not cancel the join for the others.
            await asyncio.shield(added)

    def leave(self, groups: list[str], listener: Listener) -> None:
        for group in groups:
            members = self.members.get(group)
            if members is not None:
                members.discard(listener)
                if not members:
                    del self.members[group]

    async def _receive(self, channel: str) -> None:
        renew = asyncio.ensure_future(self._renew_groups(channel))
        try:
            while True:
                event = await self.layer.receive(channel)
                for listener in tuple(self.members.get(event.get(GROUP_KEY, ""), ())):
                    try:
                        listener.deliver(event)
                    except Exception:
                        # One socket's failure is its own: the others still get the push.
                        logger.exception("a reviewer socket did not take a push")
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing more reaches this process's sockets through it: each is told, and closes
            # (its page reconnects, to a fresh subscription, and re-reads its rows) rather than
            # stay open missing every push from now on.
            logger.exception("the reviewer sockets' subscription failed")
            if _hubs.get(asyncio.get_running_loop()) is self:
                del _hubs[asyncio.get_running_loop()]
            listeners = {listener for members in self.members.values() for listener in members}
            for listener in listeners:
                try:
                    listener.deliver({"type": SUBSCRIPTION_LOST})
                except Exception:
                    logger.exception("a reviewer socket did not take the subscription's end")
        finally:
            renew.cancel()

    async def _renew_groups(self, channel: str) -> None:
        # Some layers (in-memory) let a group membership expire after a day.
        while True:
            await asyncio.sleep(RESOLVED_GROUP_RENEW_SECONDS)
            for group in list(self.joined):
                try:
                    await self.layer.group_add(group, channel)
                except Exception:
                    logger.exception("renewing the reviewer sockets' group %s failed", group)

    def close(self) -> None:
        """Stop receiving (a replaced layer in tests): its sockets get nothing more."""
        self.channel.cancel()
        if self.receiving is not None:
            self.receiving.cancel()
        with contextlib.suppress(Exception):
            for added in self.joined.values():
                added.cancel()


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReviewerSockets]" = (
    weakref.WeakKeyDictionary()
)


def reviewer_sockets() -> ReviewerSockets:
    """This loop's reviewer sockets, on the channel layer configured now."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer or (hub.channel.done() and hub.channel.exception()):
        if hub is not None:
            hub.close()
        hub = _hubs[loop] = ReviewerSockets(layer)
    return hub
