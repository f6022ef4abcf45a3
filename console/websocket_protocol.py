"""The websocket protocol the console's servers run: uvicorn's own (websockets' sans-I/O), minus
the handshake it would keep for as long as the socket is open.

`uvicorn --ws console.websocket_protocol:HandshakeFreeingProtocol` (console/Procfile). uvicorn
keeps the handshake's request and response on the protocol, and the websockets parser keeps the
request in its generator's frame: their headers, parsed twice, were about 4 KB of an idle
reviewer socket's 20, and a server holds 10,000 of them. Nothing reads them after the
handshake; the application's scope has its own copy of the request headers (approvals/consumers.py
empties that one once it has admitted the socket).
"""

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class HandshakeFreeingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol; once the socket is open, the handshake is let go."""

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and self.response is not None:
            # Emptied in place: the parser's frame holds the same request object.
            self.request.headers.clear()
            self.response = None  # type: ignore[assignment]


# uvicorn's `--ws` value for it, for the places that start servers as production does.
UVICORN_WS = f"{__name__}:{HandshakeFreeingProtocol.__name__}"
