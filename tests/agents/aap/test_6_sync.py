"""6_sync.md: the synchronous flow over real HTTP, with long polls woken by the decision."""

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from tests.factories import UserFactory, agent_with_token
from tests.waits import wait_until_parked

pytestmark = pytest.mark.django_db(transaction=True)

REFUND = {
    "tool": "issue_refund",
    "arguments": {"payment_id": "payment_123", "amount": 4900, "currency": "GBP"},
    "timeout": "30m",
}


@pytest.fixture
def adapter(live_console) -> httpx.Client:
    _, token = agent_with_token()
    return httpx.Client(
        base_url=f"{live_console.url}/aap", headers={"Authorization": f"Bearer {token}"}, timeout=40
    )


def _create(adapter: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = adapter.post(
        "/v1/requests", json={**REFUND, **overrides}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _poll_in_background(adapter: httpx.Client, approval_id: str) -> tuple[threading.Thread, dict]:
    result: dict[str, Any] = {}

    def poll() -> None:
        response = adapter.get(f"/v1/requests/{approval_id}", params={"wait": "30s"})
        result["returned_at"] = time.monotonic()
        result["response"] = response

    thread = threading.Thread(target=poll)
    thread.start()
    wait_until_parked(approval_id)
    return thread, result


def test_a_long_poll_returns_the_decision_moments_after_it_is_made(adapter) -> None:
    created = _create(adapter)
    thread, result = _poll_in_background(adapter, created["id"])
    decided_at = time.monotonic()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=created["id"]),
        reviewer=UserFactory(username="rita"),
        note="The duplicate charge has been confirmed.",
    )
    thread.join(timeout=35)
    body = result["response"].json()
    assert body["id"] == created["id"]
    assert body["status"] == "approved"
    assert body["decision"]["note"] == "The duplicate charge has been confirmed."
    assert "expires_at" in body["decision"]
    assert result["returned_at"] - decided_at < 5  # woken by the push, not by the 30 s wait


def test_cancellation_ends_a_waiting_long_poll(adapter) -> None:
    created = _create(adapter)
    thread, result = _poll_in_background(adapter, created["id"])
    cancelled_at = time.monotonic()
    assert adapter.delete(f"/v1/requests/{created['id']}").status_code == 200
    thread.join(timeout=35)
    assert result["response"].json()["status"] == "cancelled"
    assert result["returned_at"] - cancelled_at < 5


def test_a_long_poll_returns_expired_at_the_deadline(adapter) -> None:
    created = _create(adapter, timeout="1s")
    started = time.monotonic()
    body = adapter.get(f"/v1/requests/{created['id']}", params={"wait": "30s"}).json()
    assert body["status"] == "expired"
    assert body["decision"]["status"] == "expired"
    assert time.monotonic() - started < 10


def test_a_decision_on_creation_needs_no_poll(adapter) -> None:
    # A reviewer's suggestion, resubmitted exactly, is decided in the creation response itself.
    created = _create(adapter)
    suggested = {"payment_id": "payment_123", "amount": 100, "currency": "GBP"}
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=created["id"]),
        reviewer=UserFactory(username="rita", is_staff=True),  # may decide it
        arguments=suggested,
    )
    assert adapter.get(f"/v1/requests/{created['id']}").json()["status"] == "denied"
    resubmitted = _create(adapter, arguments=suggested)
    assert resubmitted["status"] == "approved"
