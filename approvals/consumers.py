"""Reviewer websockets. Thin: authenticate, join the group, re-check access, forward."""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from approvals import realtime

# Close codes in the 4000 range are ours: the browser sees why the socket was refused.
CLOSE_UNAUTHENTICATED = 4401


class QueueConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            # Closing before accept rejects the handshake (HTTP 403): nothing is ever sent.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(realtime.QUEUE_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(realtime.QUEUE_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Reviewers act through HTTP (CSRF-checked, one code path); the socket only listens.
        return

    async def queue_fragment(self, event: dict[str, Any]) -> None:
        user = self.scope["user"]
        if not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.send(text_data=event["html"])
