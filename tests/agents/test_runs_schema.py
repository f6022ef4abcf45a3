"""The OpenAPI schema documents the runs API, the native fields, decisions and errors."""

import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    document = response.json()
    validate_schema(document)
    return document


def test_it_documents_every_runs_endpoint_with_its_errors(schema) -> None:
    paths = schema["paths"]
    expected = {
        ("/api/v1/runs", "post"): {"201", "200", "400", "401", "409", "413"},
        ("/api/v1/runs/{code}", "get"): {"200", "401", "404"},
        ("/api/v1/runs/{code}/events", "post"): {"201", "200", "400", "401", "404", "409", "413"},
        ("/api/v1/runs/{code}/events", "get"): {"200", "400", "401", "404"},
        ("/api/v1/runs/{code}/close", "post"): {"200", "400", "401", "404", "409", "413"},
        ("/api/v1/requests", "post"): {"201", "200", "400", "401", "409", "413"},
    }
    for (path, method), codes in expected.items():
        assert set(paths[path][method]["responses"]) == codes, (path, method)
    error = paths["/api/v1/runs"]["post"]["responses"]["413"]["content"]["application/json"]
    assert error["schema"]["$ref"] == "#/components/schemas/Error"


def test_it_documents_trace_events_by_type(schema) -> None:
    components = schema["components"]["schemas"]
    event = components["TraceEventInputRequest"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == {"llm_call", "tool_call", "message", "note"}
    assert "model" in components["LlmCallEventInputRequest"]["required"]
    assert {"prompt_digest", "input_tokens", "cost"} <= set(
        components["LlmCallEventInputRequest"]["properties"]
    )


def test_it_documents_native_request_fields_and_decisions(schema) -> None:
    components = schema["components"]["schemas"]
    request_input = components["ApprovalRequestCreateInputRequest"]["properties"]
    assert {"run", "labels", "arguments_schema"} <= set(request_input)
    decision = components["DecisionOutput"]["properties"]
    for field in ("note", "approved_arguments", "arguments_changed", "decided_by"):
        assert decision[field].get("description"), field
    run = components["RunOutput"]["properties"]
    assert run["total_cost"]["type"] == "string" and run["total_cost"]["format"] == "decimal"


def test_it_documents_outcome_reporting_and_the_outcome_on_reads(schema) -> None:
    operation = schema["paths"]["/api/v1/requests/{code}/outcome"]["post"]
    assert set(operation["responses"]) == {"201", "200", "400", "401", "404", "409", "413"}
    components = schema["components"]["schemas"]
    assert "outcome" in components["ApprovalRequestOutput"]["properties"]
    assert set(components["OutcomeReportInputRequest"]["properties"]) == {
        "status",
        "result",
        "error",
        "duration_ms",
        "cost",
        "currency",
    }
