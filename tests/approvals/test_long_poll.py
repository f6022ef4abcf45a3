"""The long poll against the real ASGI server: woken by a push, not by polling."""

import threading
import time

import httpx
import pytest

from approvals.models import ApprovalRequest
from tests.factories import agent_with_token
from tests.waits import wait_until_parked

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"tool": "send_email", "arguments": {"to": "a@example.test"}, "timeout": "10m"}


def _agent_http(live_console) -> httpx.Client:
    _, token = agent_with_token()
    return httpx.Client(
        base_url=live_console.url, headers={"Authorization": f"Bearer {token}"}, timeout=40
    )


def _create(agent: httpx.Client, **overrides: object) -> dict:
    response = agent.post(
        "/api/v1/requests",
        json={**BODY, **overrides},
        headers={"Idempotency-Key": str(time.time())},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_it_returns_within_moments_of_a_decision(live_console, reviewer_session) -> None:
    agent = _agent_http(live_console)
    created = _create(agent)
    result: dict[str, object] = {}

    def wait() -> None:
        started = time.monotonic()
        response = agent.get(f"/api/v1/requests/{created['id']}", params={"wait": "30s"})
        result["elapsed_after_start"] = time.monotonic() - started
        result["returned_at"] = time.monotonic()
        result["body"] = response.json()

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until_parked(created["id"])
    decided_at = time.monotonic()
    response = reviewer_session.post(f"/requests/{created['id']}/approve", {"note": "ok"})
    assert response.status_code == 200, response.text
    waiter.join(timeout=35)

    body = result["body"]
    assert body["status"] == "approved"
    assert body["decision"]["note"] == "ok"
    # Woken by the push: far sooner than the 30 s wait. (Speed itself is measured by the bench.)
    assert result["returned_at"] - decided_at < 2.0


def test_it_returns_pending_when_the_wait_ends(live_console) -> None:
    agent = _agent_http(live_console)
    created = _create(agent)
    started = time.monotonic()
    response = agent.get(f"/api/v1/requests/{created['id']}", params={"wait": "1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert 0.9 < elapsed < 5


def test_it_returns_expired_at_the_deadline_not_pending(live_console) -> None:
    agent = _agent_http(live_console)
    created = _create(agent, timeout="2s")
    response = agent.get(f"/api/v1/requests/{created['id']}", params={"wait": "30"})
    body = response.json()
    assert body["status"] == "expired"
    assert body["decision"]["decided_by"] == "system"
    assert ApprovalRequest.objects.get(code=created["id"]).status == "expired"


def test_it_ends_the_wait_when_the_agent_cancels(live_console) -> None:
    agent = _agent_http(live_console)
    created = _create(agent)
    result: dict[str, object] = {}
    waiter = threading.Thread(
        target=lambda: result.update(
            body=agent.get(f"/api/v1/requests/{created['id']}", params={"wait": "30"}).json()
        )
    )
    waiter.start()
    wait_until_parked(created["id"])
    cancel_agent = httpx.Client(base_url=live_console.url, headers=agent.headers, timeout=10)
    assert cancel_agent.post(f"/api/v1/requests/{created['id']}/cancel").status_code == 200
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert result["body"]["status"] == "cancelled"


def test_waiting_polls_hold_no_database_connection(live_console) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("connection pooling (and so pool exhaustion) exists on PostgreSQL only")
    agent = _agent_http(live_console)
    waiting = 6
    codes = [_create(agent)["id"] for _ in range(waiting)]
    pool = connection.pool  # type: ignore[attr-defined]  # PostgreSQL backend with pooling on
    before = pool.get_stats()
    in_use_before = before["pool_size"] - before["pool_available"]
    threads = [
        threading.Thread(
            target=lambda code=code: agent.get(f"/api/v1/requests/{code}", params={"wait": "4"})
        )
        for code in codes
    ]
    for thread in threads:
        thread.start()
    for code in codes:
        wait_until_parked(code)
    during = pool.get_stats()
    in_use = during["pool_size"] - during["pool_available"]
    for thread in threads:
        thread.join(timeout=10)
    # Parked polls gave their connections back; without that, each would hold one.
    assert in_use - in_use_before < waiting, during
