"""Native request fields: the run a request belongs to, labels, and the arguments' JSON Schema."""

import pytest
from rest_framework.test import APIClient

from agents.models import Run
from agents.services import run_close, run_open
from approvals.models import ActorType, ApprovalEvent, ApprovalRequest, Status
from approvals.services import approval_arguments_validate
from tests.factories import ApprovalRequestFactory, agent_with_token

pytestmark = pytest.mark.django_db

BODY = {"tool": "issue_refund", "arguments": {"payment_id": "pay_1", "amount": 4900}}
SCHEMA = {
    "type": "object",
    "properties": {
        "payment_id": {"type": "string", "pattern": "^pay_"},
        "amount": {"type": "integer", "minimum": 1, "maximum": 10000},
    },
    "required": ["payment_id", "amount"],
    "additionalProperties": False,
}


def _create(client: APIClient, key: str = "key-1", **extra: object):
    return client.post(
        "/api/v1/requests", {**BODY, **extra}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


@pytest.fixture
def run(agent_and_token) -> Run:
    agent, _ = agent_and_token
    run, _ = run_open(agent=agent, name="refund run")
    return run


def test_it_links_a_request_to_its_run_and_echoes_it(agent_client, run) -> None:
    response = _create(agent_client, run=str(run.code), labels=["billing", "refund"])
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["run"] == str(run.code) and data["status"] == "pending"
    assert data["labels"] == ["billing", "refund"] and data["arguments_schema"] is None
    assert ApprovalRequest.objects.get(code=data["id"]).run == run
    assert agent_client.get(f"/api/v1/requests/{data['id']}").json()["run"] == str(run.code)


def test_it_echoes_no_run_when_none_was_named(agent_client) -> None:
    data = _create(agent_client).json()
    assert data["run"] is None and data["labels"] == []


def test_it_rejects_a_run_of_another_agent_as_unknown(agent_client) -> None:
    stranger, _ = agent_with_token(name="stranger")
    foreign, _ = run_open(agent=stranger, name="theirs")
    response = _create(agent_client, run=str(foreign.code))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "run"
    assert response.json()["error"]["code"] == "unknown_run"
    assert ApprovalRequest.objects.count() == 0


@pytest.mark.parametrize("final", ["halted", "completed", "failed"])
def test_it_denies_a_request_naming_a_closed_run_at_once(agent_client, run, final) -> None:
    run_close(run=run, status=final, reason="budget blown")
    response = _create(agent_client, run=str(run.code))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "denied"
    assert data["decision"]["decided_by"] == "system"
    assert f"is {final}" in data["decision"]["note"] and "budget blown" in data["decision"]["note"]
    assert data["decision"]["approved_arguments"] is None

    approval = ApprovalRequest.objects.get(code=data["id"])
    events = list(ApprovalEvent.objects.filter(approval=approval).values_list("kind", "actor_type"))
    assert events == [("submitted", ActorType.AGENT), ("denied", ActorType.SYSTEM)]


def test_it_denies_pending_requests_when_their_run_is_halted(agent_client, run) -> None:
    pending_id = _create(agent_client, run=str(run.code)).json()["id"]
    unrelated_id = _create(agent_client, key="key-2").json()["id"]
    response = agent_client.post(
        f"/api/v1/runs/{run.code}/close", {"status": "halted", "reason": "runaway"}, format="json"
    )
    assert response.status_code == 200
    pending = agent_client.get(f"/api/v1/requests/{pending_id}").json()
    assert pending["status"] == "denied" and "runaway" in pending["decision"]["note"]
    assert agent_client.get(f"/api/v1/requests/{unrelated_id}").json()["status"] == "pending"


def test_it_leaves_pending_requests_when_a_run_completes(agent_client, run) -> None:
    pending_id = _create(agent_client, run=str(run.code)).json()["id"]
    agent_client.post(f"/api/v1/runs/{run.code}/close", {"status": "completed"}, format="json")
    assert ApprovalRequest.objects.get(code=pending_id).status == Status.PENDING


def test_it_stores_a_valid_arguments_schema(agent_client) -> None:
    schema = {**SCHEMA, "$defs": {"id": {"type": "string"}}}
    schema["properties"] = {**SCHEMA["properties"], "payment_id": {"$ref": "#/$defs/id"}}
    response = _create(agent_client, arguments_schema=schema)
    assert response.status_code == 201, response.content
    assert response.json()["arguments_schema"] == schema


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"arguments_schema": {"type": "banana"}}, "arguments_schema"),
        ({"arguments_schema": {"minimum": "ten"}}, "arguments_schema"),
        ({"arguments_schema": ["not", "an", "object"]}, "arguments_schema"),
        (
            {"arguments_schema": {"properties": {"a": {"$ref": "https://evil.test/s.json"}}}},
            "arguments_schema",
        ),
        ({"arguments_schema": {**SCHEMA, "required": ["currency"]}}, "arguments"),
        ({"labels": "billing"}, "labels"),
        ({"labels": ["x" * 51]}, "labels"),
        ({"labels": [str(n) for n in range(21)]}, "labels"),
        ({"run": "not-a-uuid"}, "run"),
    ],
)
def test_it_rejects_bad_native_fields_and_stores_nothing(agent_client, extra, param) -> None:
    response = _create(agent_client, **extra)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"].startswith(param)
    assert ApprovalRequest.objects.count() == 0


def test_it_names_why_arguments_break_their_schema(agent_client) -> None:
    response = _create(agent_client, arguments_schema={**SCHEMA, "required": ["currency"]})
    assert "'currency' is a required property" in response.json()["error"]["message"]


def test_it_validates_reviewer_edits_against_the_schema() -> None:
    approval = ApprovalRequestFactory(arguments_schema=SCHEMA)
    assert approval_arguments_validate(approval=approval, arguments=BODY["arguments"]) == []
    errors = approval_arguments_validate(
        approval=approval, arguments={"payment_id": "card_9", "amount": 0, "note": "x"}
    )
    assert len(errors) == 3
    assert any(error.startswith("$.amount: 0 is less than the minimum") for error in errors)
    assert any(error.startswith("$.payment_id:") for error in errors)
    assert any("'note' was unexpected" in error for error in errors)


def test_it_accepts_any_edit_without_a_schema() -> None:
    approval = ApprovalRequestFactory()
    assert approval_arguments_validate(approval=approval, arguments={"anything": 1}) == []


def test_it_never_fetches_a_remote_ref() -> None:
    approval = ApprovalRequestFactory(
        arguments_schema={"$ref": "http://169.254.169.254/latest/meta-data"}
    )
    errors = approval_arguments_validate(approval=approval, arguments={})
    assert errors == [
        "$: the schema refers to 'http://169.254.169.254/latest/meta-data', "
        "which cannot be resolved"
    ]
