"""Bad input to the runs API: 400 naming the field, 413 for oversized bodies, nothing stored."""

import httpx
import pytest
from rest_framework.test import APIClient

from agents.models import Run, TraceEvent
from approvals.models import ApprovalRequest

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_id(agent_client: APIClient) -> str:
    return agent_client.post("/api/v1/runs", {"name": "bot"}, format="json").json()["id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "bot", "metadata": [1]}, "metadata"),
        ({"name": "bot", "budget": "-1"}, "budget"),
        ({"name": "bot", "budget": "lots"}, "budget"),
        ({"name": "bot", "external_id": "e" * 256}, "external_id"),
        ({"name": "bot", "surprise": 1}, "surprise"),
    ],
)
def test_it_rejects_a_bad_run_naming_the_field(agent_client, body, param) -> None:
    response = agent_client.post("/api/v1/runs", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "telepathy"}, "events.1.type"),
        ({}, "events.1.type"),
        ("a string", "events.1"),
        ({"type": "llm_call"}, "events.1.model"),
        ({"type": "llm_call", "model": "m", "cost": "-0.1"}, "events.1.cost"),
        ({"type": "llm_call", "model": "m", "cost": "0.123456789"}, "events.1.cost"),
        ({"type": "llm_call", "model": "m", "input_tokens": -1}, "events.1.input_tokens"),
        ({"type": "tool_call", "tool": "t", "result": 1, "error": "e"}, "events.1.error"),
        ({"type": "tool_call", "tool": "t", "arguments": "x"}, "events.1.arguments"),
        ({"type": "message", "role": "user"}, "events.1.content"),
        ({"type": "note", "text": "x", "occurred_at": "yesterday"}, "events.1.occurred_at"),
        ({"type": "note", "text": "x", "surprise": 1}, "events.1.surprise"),
    ],
)
def test_it_rejects_a_batch_with_one_bad_event_and_stores_none(
    agent_client, run_id, event, param
) -> None:
    good = {"type": "note", "text": "fine"}
    response = agent_client.post(
        f"/api/v1/runs/{run_id}/events", {"events": [good, event]}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == param, error
    assert TraceEvent.objects.count() == 0
    assert Run.objects.get(code=run_id).last_sequence == 0


def test_it_rejects_an_empty_batch(agent_client, run_id) -> None:
    response = agent_client.post(f"/api/v1/runs/{run_id}/events", {"events": []}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "events"


def test_it_caps_the_batch_size(agent_client, run_id, settings) -> None:
    settings.TRACE_MAX_BATCH_EVENTS = 5
    events = [{"type": "note", "text": str(n)} for n in range(6)]
    response = agent_client.post(f"/api/v1/runs/{run_id}/events", {"events": events}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "events" and "At most 5 events" in error["message"]
    assert TraceEvent.objects.count() == 0


def test_it_caps_text_and_json_fields(agent_client, run_id, settings) -> None:
    settings.API_MAX_FIELD_BYTES = 100
    too_big = {"type": "tool_call", "tool": "t", "result": {"blob": "x" * 200}}
    response = agent_client.post(
        f"/api/v1/runs/{run_id}/events", {"events": [too_big]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "events.0.result"
    assert "at most 100 bytes" in response.json()["error"]["message"]

    long_note = {"type": "note", "text": "x" * 70_000}
    response = agent_client.post(
        f"/api/v1/runs/{run_id}/events", {"events": [long_note]}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "events.0.text"
    assert TraceEvent.objects.count() == 0


def test_it_answers_413_to_a_body_over_the_default_cap(agent_client, run_id) -> None:
    # 300 KiB in notes that are each within the per-field cap: only the body cap can refuse it.
    events = [{"type": "note", "text": "x" * 30_000} for _ in range(10)]
    response = agent_client.post(f"/api/v1/runs/{run_id}/events", {"events": events}, format="json")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["type"] == "invalid_request"
    assert str(256 * 1024) in error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    assert TraceEvent.objects.count() == 0


def test_it_answers_413_on_every_agent_endpoint_and_stores_nothing(agent_client, settings) -> None:
    settings.API_MAX_BODY_BYTES = 200
    padding = "x" * 300
    run = agent_client.post("/api/v1/runs", {"name": padding}, format="json")
    request = agent_client.post(
        "/api/v1/requests",
        {"tool": "t", "arguments": {"padding": padding}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert run.status_code == 413 and request.status_code == 413
    assert Run.objects.count() == 0 and ApprovalRequest.objects.count() == 0
    small = agent_client.post("/api/v1/runs", {"name": "bot"}, format="json")
    assert small.status_code == 201


def test_it_answers_400_to_a_malformed_query(agent_client, run_id) -> None:
    response = agent_client.get(f"/api/v1/runs/{run_id}/events?after=-1")
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"


@pytest.mark.django_db(transaction=True)
def test_it_answers_413_to_a_chunked_body_without_content_length(live_console) -> None:
    from tests.factories import agent_with_token

    _, token = agent_with_token(name="chunky-bot")

    def chunks():
        yield b'{"name": "'
        for _ in range(300):
            yield b"x" * 1024
        yield b'"}'

    response = httpx.post(
        f"{live_console.url}/api/v1/runs",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Run.objects.count() == 0


@pytest.mark.parametrize("depth", [65, 5000])
def test_it_rejects_json_nested_too_deeply(agent_client, run_id, depth) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"events": [{"type": "note", "text": "x", "metadata": {"a": ' + nested + "}}]}"
    response = agent_client.generic(
        "POST", f"/api/v1/runs/{run_id}/events", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["error"]["message"]
    assert TraceEvent.objects.count() == 0


def test_it_accepts_reasonably_nested_json(agent_client, run_id) -> None:
    nested: object = "leaf"
    for _ in range(60):
        nested = [nested]
    event = {"type": "note", "text": "x", "metadata": {"a": nested}}
    response = agent_client.post(
        f"/api/v1/runs/{run_id}/events", {"events": [event]}, format="json"
    )
    assert response.status_code == 201
