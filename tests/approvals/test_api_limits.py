"""console.api_limits: the same input limits, and the same answers, on every agent API.

AAP: tests/agents/aap/test_5_http.py; runs and traces: tests/agents/test_runs_input.py.
"""

from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from approvals.models import ApprovalRequest

pytestmark = pytest.mark.django_db

BODY = {"tool": "issue_refund", "arguments": {"payment_id": "pay_1"}, "timeout": "30m"}
FUNCTION_CALL = {"run_id": "run-1", "call_id": "call-1", "spec": {"fn": "refund", "kwargs": {}}}


def _create(client, body: dict[str, Any], key: str = "k1"):
    return client.post("/api/v1/requests", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- Native API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout", ["702608525057228493965349s", "99999999999999999h", "1" * 5000 + "m"]
)
def test_a_huge_timeout_is_shortened_not_refused(agent_client, timeout: str) -> None:
    # Stored as sent (16 characters used to be the column's width: PostgreSQL refused more).
    response = _create(agent_client, {**BODY, "timeout": timeout})
    assert response.status_code == 201, response.content
    approval = ApprovalRequest.objects.get()
    assert approval.timeout == timeout
    assert approval.timeout_seconds == settings.APPROVAL_MAX_TIMEOUT_SECONDS


def test_a_timeout_over_the_field_cap_is_refused(agent_client) -> None:
    response = _create(agent_client, {**BODY, "timeout": "1" * (64 * 1024 + 1) + "s"})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "too_large",
        "timeout",
    )


def test_a_huge_wait_is_capped_not_refused(agent_client) -> None:
    created = _create(agent_client, BODY).json()
    assert agent_client.post(f"/api/v1/requests/{created['id']}/cancel").status_code == 200
    for wait in ["7494250792344h", "1" * 5000, "99999999m"]:
        response = agent_client.get(f"/api/v1/requests/{created['id']}", {"wait": wait})
        assert response.status_code == 200, (wait, response.content)
    assert agent_client.get(f"/api/v1/requests/{created['id']}?wait=-1").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_caps_a_huge_wait_too(agent_and_token) -> None:
    from console.asgi import application

    _, token = agent_and_token

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            created = await client.post(
                "/api/v1/requests", json=BODY, headers={"Idempotency-Key": "k1"}
            )
            code = created.json()["id"]
            await client.post(f"/api/v1/requests/{code}/cancel")
            read = await client.get(f"/api/v1/requests/{code}", params={"wait": "7494250792344h"})
            return [created.status_code, read.status_code]

    assert async_to_sync(scenario)() == [201, 200]


# --- HumanLayer -----------------------------------------------------------------------------------


def test_humanlayer_bodies_over_the_cap_are_refused_413(agent_client) -> None:
    state = {f"part{n}": "x" * 30_000 for n in range(10)}
    body = {**FUNCTION_CALL, "spec": {**FUNCTION_CALL["spec"], "state": state}}
    response = agent_client.post("/humanlayer/v1/function_calls", body, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize("field", ["kwargs", "state", "channel", "reject_options"])
def test_humanlayer_fields_over_the_field_cap_are_refused_400(agent_client, field: str) -> None:
    spec = {**FUNCTION_CALL["spec"], field: {"blob": "x" * 200_000}}
    response = agent_client.post(
        "/humanlayer/v1/function_calls", {**FUNCTION_CALL, "spec": spec}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("too_large", f"spec.{field}")
    assert not ApprovalRequest.objects.exists()


def test_humanlayer_json_nested_too_deeply_is_refused_400(agent_client) -> None:
    nested = "[" * 500 + "]" * 500
    body = '{"run_id": "r", "call_id": "c", "spec": {"fn": "f", "kwargs": {"a": ' + nested + "}}}"
    response = agent_client.generic(
        "POST", "/humanlayer/v1/function_calls", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["error"]["message"]
