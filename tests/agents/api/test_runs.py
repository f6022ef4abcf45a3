"""The runs API: open, read, append trace events, close; access between agents."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from agents.models import Run, TraceEvent
from tests.factories import agent_with_token

pytestmark = pytest.mark.django_db


def _open(client: APIClient, **body: object):
    return client.post("/api/v1/runs", {"name": "refund-bot", **body}, format="json")


def _append(client: APIClient, run_id: str, events: list[dict]):
    return client.post(f"/api/v1/runs/{run_id}/events", {"events": events}, format="json")


def _client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_it_opens_a_run_with_the_contracted_shape(agent_client) -> None:
    response = _open(agent_client, external_id="ext-1", metadata={"ticket": 7}, budget="2.50")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "open"
    assert data["external_id"] == "ext-1" and data["name"] == "refund-bot"
    assert data["metadata"] == {"ticket": 7}
    # Costs go out as decimal strings, never floats.
    assert data["budget"] == "2.50000000" and data["total_cost"] == "0.00000000"
    assert data["closed_at"] is None and data["created_at"].endswith("Z")
    assert Run.objects.get(code=data["id"]).name == "refund-bot"


def test_it_reads_a_run(agent_client) -> None:
    run_id = _open(agent_client).json()["id"]
    response = agent_client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200
    assert response.json()["id"] == run_id and response.json()["external_id"] is None


def test_it_returns_the_same_run_for_the_same_external_id(agent_client) -> None:
    first = _open(agent_client, external_id="ext-1").json()
    again = _open(agent_client, external_id="ext-1")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    conflict = _open(agent_client, external_id="ext-1", name="other")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "external_id_conflict"
    assert Run.objects.count() == 1


def test_it_lets_two_agents_use_the_same_external_id(agent_client) -> None:
    _, other_token = agent_with_token(name="other-bot")
    assert _open(agent_client, external_id="ext-1").status_code == 201
    assert _open(_client_for(other_token), external_id="ext-1").status_code == 201


def test_it_appends_a_batch_in_order_with_sequences_and_both_clocks(agent_client) -> None:
    run_id = _open(agent_client).json()["id"]
    events = [
        {"type": "message", "role": "user", "content": "Refund my order"},
        {
            "type": "llm_call",
            "model": "gpt-5",
            "prompt_digest": "sha256:ab",
            "input_tokens": 120,
            "output_tokens": 30,
            "cost": "0.0015",
            "occurred_at": "2026-11-23T10:00:00Z",
        },
        {"type": "tool_call", "tool": "lookup_order", "arguments": {"id": 1}, "result": [1, 2]},
        {"type": "note", "text": "looks like a duplicate", "metadata": {"k": "v"}},
    ]
    response = _append(agent_client, run_id, events)
    assert response.status_code == 201, response.content
    stored = response.json()["events"]
    assert [e["sequence"] for e in stored] == [1, 2, 3, 4]
    assert [e["type"] for e in stored] == ["message", "llm_call", "tool_call", "note"]
    assert stored[1]["occurred_at"] == "2026-11-23T10:00:00Z"
    assert stored[1]["recorded_at"].endswith("Z") and stored[0]["occurred_at"] is None
    assert stored[1]["model"] == "gpt-5" and stored[1]["input_tokens"] == 120
    assert Decimal(stored[1]["cost"]) == Decimal("0.0015") and stored[0]["cost"] is None
    assert stored[2]["result"] == [1, 2] and stored[3]["metadata"] == {"k": "v"}

    more = _append(agent_client, run_id, [{"type": "note", "text": "next"}]).json()["events"]
    assert more[0]["sequence"] == 5
    listed = agent_client.get(f"/api/v1/runs/{run_id}/events?after=3").json()["events"]
    assert [(e["sequence"], e["type"]) for e in listed] == [(4, "note"), (5, "note")]


def test_it_keeps_the_run_total_cost(agent_client) -> None:
    run_id = _open(agent_client, budget="0.01").json()["id"]
    _append(
        agent_client,
        run_id,
        [
            {"type": "llm_call", "model": "m", "cost": "0.004"},
            {"type": "llm_call", "model": "m", "cost": 0.002},
            {"type": "tool_call", "tool": "t", "error": "boom", "cost": "0.001"},
            {"type": "note", "text": "free"},
        ],
    )
    run = agent_client.get(f"/api/v1/runs/{run_id}").json()
    assert Decimal(run["total_cost"]) == Decimal("0.007")
    assert run["over_budget"] is False
    _append(agent_client, run_id, [{"type": "llm_call", "model": "m", "cost": "0.005"}])
    run = agent_client.get(f"/api/v1/runs/{run_id}").json()
    assert Decimal(run["total_cost"]) == Decimal("0.012") and run["over_budget"] is True


def test_it_stores_a_retried_batch_once(agent_client) -> None:
    run_id = _open(agent_client).json()["id"]
    batch = [{"type": "llm_call", "model": "m", "cost": "0.5"}, {"type": "note", "text": "x"}]

    def send(events: list[dict[str, str]]):
        return agent_client.post(
            f"/api/v1/runs/{run_id}/events",
            {"events": events},
            format="json",
            HTTP_IDEMPOTENCY_KEY="batch-1",
        )

    first = send(batch)
    retry = send(batch)
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json() == first.json()
    assert TraceEvent.objects.count() == 2
    assert Decimal(agent_client.get(f"/api/v1/runs/{run_id}").json()["total_cost"]) == Decimal(
        "0.5"
    )
    conflict = send(batch[:1])
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"

    agent_client.post(f"/api/v1/runs/{run_id}/close", {"status": "completed"}, format="json")
    assert send(batch).status_code == 200  # a retry after close


@pytest.mark.parametrize("final", ["completed", "failed", "halted"])
def test_it_closes_a_run_and_then_refuses_events(agent_client, final: str) -> None:
    run_id = _open(agent_client).json()["id"]
    response = agent_client.post(
        f"/api/v1/runs/{run_id}/close", {"status": final, "reason": "done"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == final and response.json()["closed_at"]
    assert response.json()["close_reason"] == "done"

    refused = _append(agent_client, run_id, [{"type": "note", "text": "late"}])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "run_closed"
    assert TraceEvent.objects.count() == 0

    again = agent_client.post(f"/api/v1/runs/{run_id}/close", {"status": final}, format="json")
    assert again.status_code == 200  # a retried close is harmless
    other = "failed" if final != "failed" else "completed"
    changed = agent_client.post(f"/api/v1/runs/{run_id}/close", {"status": other}, format="json")
    assert changed.status_code == 409 and Run.objects.get(code=run_id).status == final


def test_it_refuses_to_close_a_run_as_open(agent_client) -> None:
    run_id = _open(agent_client).json()["id"]
    response = agent_client.post(f"/api/v1/runs/{run_id}/close", {"status": "open"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "status"


def test_it_hides_other_agents_runs(agent_client) -> None:
    _, other_token = agent_with_token(name="other-bot")
    other = _client_for(other_token)
    run_id = _open(agent_client).json()["id"]

    assert other.get(f"/api/v1/runs/{run_id}").status_code == 404
    assert other.get(f"/api/v1/runs/{run_id}/events").status_code == 404
    assert _append(other, run_id, [{"type": "note", "text": "x"}]).status_code == 404
    closing = other.post(f"/api/v1/runs/{run_id}/close", {"status": "halted"}, format="json")
    assert closing.status_code == 404 and closing.json()["error"]["code"] == "not_found"
    assert TraceEvent.objects.count() == 0 and Run.objects.get(code=run_id).status == "open"


def test_it_requires_a_credential() -> None:
    assert APIClient().post("/api/v1/runs", {"name": "x"}, format="json").status_code == 401
