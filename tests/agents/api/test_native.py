import uuid

import pytest
from rest_framework.test import APIClient

from agents.services import credential_revoke
from approvals.models import ApprovalRequest, Status
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, UserFactory, agent_with_token

pytestmark = pytest.mark.django_db

BODY = {
    "tool": "issue_refund",
    "arguments": {"payment_id": "pay_1", "amount": 4900, "currency": "GBP"},
    "timeout": "30m",
    "summary": "Refund a duplicate charge of £49.00.",
    "reasoning": "The customer was charged twice.",
    "confidence": 0.42,
    "impact": "high",
}


def _create(client: APIClient, body: dict | None = None, key: str | None = "key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(
        "/api/v1/requests", body if body is not None else BODY, format="json", **headers
    )


def test_it_creates_a_request_and_echoes_what_was_submitted(agent_client) -> None:
    response = _create(agent_client)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "pending"
    assert data["arguments"] == BODY["arguments"]
    assert data["confidence"] == 0.42 and data["impact"] == "high"
    assert data["created_at"].endswith("Z") and data["deadline_at"].endswith("Z")
    assert "decision" not in data
    assert response["X-Request-ID"]
    assert ApprovalRequest.objects.get(code=data["id"]).tool == "issue_refund"


def test_it_replays_the_same_key_with_200_and_the_same_request(agent_client) -> None:
    first = _create(agent_client).json()
    replay = _create(agent_client)
    assert replay.status_code == 200
    assert replay.json()["id"] == first["id"]
    assert ApprovalRequest.objects.count() == 1


def test_it_returns_409_for_the_same_key_with_a_different_body(agent_client) -> None:
    _create(agent_client)
    response = _create(agent_client, {**BODY, "arguments": {"amount": 1}})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "idempotency_conflict" and error["type"] == "conflict"
    assert error["request_id"] == response["X-Request-ID"]
    assert ApprovalRequest.objects.count() == 1


def test_it_requires_an_idempotency_key(agent_client) -> None:
    response = _create(agent_client, key=None)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
    assert ApprovalRequest.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tool": ""}, "tool"),
        ({"arguments": [1, 2]}, "arguments"),
        ({"confidence": 1.5}, "confidence"),
        ({"impact": "apocalyptic"}, "impact"),
        ({"timeout": "30 minutes"}, "timeout"),
        ({"context": "not an object"}, "context"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_it_rejects_bad_input_naming_the_field_and_stores_nothing(
    agent_client, change, field
) -> None:
    response = _create(agent_client, {**BODY, **change})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == field
    assert field in error["message"]
    assert ApprovalRequest.objects.count() == 0


def test_it_rejects_a_missing_required_field(agent_client) -> None:
    body = {k: v for k, v in BODY.items() if k != "tool"}
    response = _create(agent_client, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool"


def test_it_rejects_a_body_that_is_not_json(agent_client) -> None:
    response = agent_client.post(
        "/api/v1/requests", "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert ApprovalRequest.objects.count() == 0


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer aac_nope_nope", "Basic dXNlcjpwYXNz", "Bearer not-even-shaped"],
)
def test_it_answers_401_without_a_valid_credential(authorization) -> None:
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    for response in (
        _create(client),
        client.get(f"/api/v1/requests/{uuid.uuid4()}"),
        client.post(f"/api/v1/requests/{uuid.uuid4()}/cancel"),
    ):
        assert response.status_code == 401, response.content
        assert response.json()["error"]["type"] == "authentication"
    assert ApprovalRequest.objects.count() == 0


def test_it_answers_401_to_a_revoked_credential(agent_and_token) -> None:
    agent, token = agent_and_token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert _create(client).status_code == 201
    credential_revoke(credential=agent.credentials.get())
    assert _create(client, key="key-2").status_code == 401


def test_it_reads_a_decided_request_with_its_decision(agent_client, agent_and_token) -> None:
    created = _create(agent_client).json()
    approval = ApprovalRequest.objects.get(code=created["id"])
    approval_request_approve(approval=approval, reviewer=UserFactory(), note="Duplicate confirmed.")
    data = agent_client.get(f"/api/v1/requests/{created['id']}").json()
    assert data["status"] == "approved"
    assert data["decision"]["status"] == "approved"
    assert data["decision"]["note"] == "Duplicate confirmed."
    assert data["decision"]["expires_at"] > data["decision"]["decided_at"]
    assert data["decision"]["decided_by"] == "reviewer"


def test_it_hides_other_agents_requests(agent_client) -> None:
    other = ApprovalRequestFactory()
    assert agent_client.get(f"/api/v1/requests/{other.code}").status_code == 404
    assert agent_client.post(f"/api/v1/requests/{other.code}/cancel").status_code == 404
    other.refresh_from_db()
    assert other.status == Status.PENDING


def test_it_cancels_and_then_refuses_to_cancel_a_decided_request(agent_client) -> None:
    created = _create(agent_client).json()
    response = agent_client.post(f"/api/v1/requests/{created['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert agent_client.post(f"/api/v1/requests/{created['id']}/cancel").status_code == 200

    decided = _create(agent_client, key="key-2").json()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=decided["id"]), reviewer=UserFactory()
    )
    response = agent_client.post(f"/api/v1/requests/{decided['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_terminal"


def test_it_rejects_a_malformed_wait(agent_client) -> None:
    created = _create(agent_client).json()
    response = agent_client.get(f"/api/v1/requests/{created['id']}?wait=soon")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "wait"


def test_it_serves_a_valid_openapi_schema(client) -> None:
    from drf_spectacular.validation import validate_schema

    response = client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert "/api/v1/requests" in schema["paths"]
    assert "/api/v1/requests/{code}" in schema["paths"]
    assert "agentCredential" in schema["components"]["securitySchemes"]


def test_agents_are_isolated_by_credential() -> None:
    _, token_a = agent_with_token()
    _, token_b = agent_with_token()
    a, b = APIClient(), APIClient()
    a.credentials(HTTP_AUTHORIZATION=f"Bearer {token_a}")
    b.credentials(HTTP_AUTHORIZATION=f"Bearer {token_b}")
    created = _create(a).json()
    assert b.get(f"/api/v1/requests/{created['id']}").status_code == 404


def test_it_tells_the_agent_which_arguments_were_approved(agent_client) -> None:
    created = _create(agent_client).json()
    approval = ApprovalRequest.objects.get(code=created["id"])
    approval_request_approve(
        approval=approval, reviewer=UserFactory(), arguments={**BODY["arguments"], "amount": 2500}
    )
    decision = agent_client.get(f"/api/v1/requests/{created['id']}").json()["decision"]
    assert decision["arguments_changed"] is True
    assert decision["approved_arguments"]["amount"] == 2500

    plain = _create(agent_client, key="key-2").json()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=plain["id"]), reviewer=UserFactory()
    )
    decision = agent_client.get(f"/api/v1/requests/{plain['id']}").json()["decision"]
    assert decision["arguments_changed"] is False
    assert decision["approved_arguments"] == BODY["arguments"]
