"""Reviewer websockets over a real connection to the real ASGI server."""

import asyncio

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.factories import agent_with_token
from tests.sockets import next_message_containing

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_pushes_a_new_request_to_a_connected_reviewer(live_console, reviewer_session) -> None:
    _, token = agent_with_token()

    async def scenario() -> str:
        async with reviewer_session.socket() as ws:
            async with httpx.AsyncClient(base_url=live_console.url) as agent:
                response = await agent.post(
                    "/api/v1/requests",
                    json={
                        "tool": "delete_record",
                        "arguments": {"id": 7},
                        "summary": "<script>alert(1)</script>",
                    },
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "ws-1"},
                )
                assert response.status_code == 201
                code = response.json()["id"]
            return await next_message_containing(ws, f"approval-{code}")

    fragment = asyncio.run(scenario())
    assert "delete_record" in fragment
    assert 'hx-swap-oob="beforeend:#queue-rows"' in fragment
    # Agent text arrives escaped: the browser renders it as text.
    assert "<script>alert(1)</script>" not in fragment
    assert "&lt;script&gt;" in fragment


def test_it_pushes_the_removal_when_a_request_is_decided(live_console, reviewer_session) -> None:
    _, token = agent_with_token()
    created = httpx.post(
        f"{live_console.url}/api/v1/requests",
        json={"tool": "deploy", "arguments": {"service": "api"}},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "ws-2"},
    ).json()

    async def scenario() -> str:
        async with reviewer_session.socket() as ws:
            await asyncio.to_thread(
                reviewer_session.post, f"/requests/{created['id']}/deny", {"reason": "Freeze."}
            )
            return await next_message_containing(ws, f"decision-panel-{created['id']}")

    fragment = asyncio.run(scenario())
    assert f'<li id="approval-{created["id"]}" hx-swap-oob="delete">' in fragment
    assert "Denied" in fragment and "Freeze." in fragment


def test_it_refuses_an_anonymous_socket(live_console) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"{live_console.ws_url}/ws/queue/", origin=live_console.url):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(scenario())
    assert refused.value.response.status_code == 403


def _connect_from(live_console, reviewer_session, origin: str | None) -> int:
    """The handshake's status for a reviewer's socket opened by a page at `origin`."""

    async def scenario() -> int:
        async with websockets.connect(
            f"{live_console.ws_url}/ws/queue/",
            additional_headers={"Cookie": reviewer_session.session_cookie},
            origin=origin,
        ):
            return 101

    try:
        return asyncio.run(scenario())
    except InvalidStatus as refused:
        return refused.response.status_code


def test_it_refuses_a_socket_from_another_origin(live_console, reviewer_session) -> None:
    port = live_console.port
    assert _connect_from(live_console, reviewer_session, live_console.url) == 101
    for origin in [
        "http://evil.example",
        # The console's host on another port or scheme is another origin (another program).
        "http://127.0.0.1:1234",
        f"https://127.0.0.1:{port}",
        "http://127.0.0.1",
        # An allowed host name is not the console's origin either.
        f"http://localhost:{port}",
        "http://localhost:1234",
        "null",
        None,
    ]:
        assert _connect_from(live_console, reviewer_session, origin) == 403, origin


def test_it_accepts_a_socket_from_a_trusted_origin(
    live_console, reviewer_session, settings
) -> None:
    # Behind a proxy the page's origin is the proxy's: CSRF_TRUSTED_ORIGINS names it, for forms
    # and sockets alike.
    settings.CSRF_TRUSTED_ORIGINS = ["https://console.example", "https://*.example.org"]
    for origin in ["https://console.example", "https://a.example.org"]:
        assert _connect_from(live_console, reviewer_session, origin) == 101, origin
    for origin in [
        "http://console.example",
        "https://console.example:8443",
        "https://example.org.evil",
    ]:
        assert _connect_from(live_console, reviewer_session, origin) == 403, origin
