"""The servers' websocket protocol lets the handshake go once a socket is open."""

import asyncio

import httpx
import pytest

from console.websocket_protocol import HandshakeFreeingProtocol
from tests.factories import agent_with_token
from tests.sockets import next_message_containing

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_open_socket_keeps_no_handshake_and_still_gets_pushes(
    live_console, reviewer_session
) -> None:
    _, token = agent_with_token()

    async def scenario() -> tuple[list[HandshakeFreeingProtocol], str]:
        async with reviewer_session.socket() as ws:
            protocols = [
                protocol
                for protocol in live_console.server.server_state.connections
                if isinstance(protocol, HandshakeFreeingProtocol) and protocol.handshake_complete
            ]
            async with httpx.AsyncClient(base_url=live_console.url) as agent:
                created = await agent.post(
                    "/api/v1/requests",
                    json={"tool": "after_the_handshake", "arguments": {}},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "hs-1"},
                )
            return protocols, await next_message_containing(ws, created.json()["id"])

    (protocol,), pushed = asyncio.run(scenario())
    assert protocol.response is None
    assert not protocol.request.headers  # emptied: the websockets parser still holds the request
    assert "after_the_handshake" in pushed
