"""OpenTelemetry: the console continues the agent's trace. Spans travel through the real OTLP
HTTP/protobuf exporter to a receiver the test starts (tests/otlp_receiver.py), each joined to a
parent span the test (the "agent") created: same trace id, the agent's span as parent."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from approval_console import Console
from django.utils import timezone
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span as AgentSpan
from opentelemetry.trace import format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from rest_framework.test import APIClient

from agents.services import provisioner_token_create
from approvals.models import ApprovalRequest
from approvals.services import (
    approval_outcomes_mark_not_reported,
    approval_request_approve,
    approval_request_deny,
    approval_request_expire_if_overdue,
)
from console import tracing
from tests.agents.aap.conftest import REFUND, bearer, provision
from tests.agents.conftest import FAST_RETRY, Reviewer
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "tool": "issue_refund",
    "arguments": {"payment_id": "pay_1", "amount": 4900},
    "impact": "high",
    "confidence": 0.42,
}
_agent_tracer = TracerProvider().get_tracer("the agent under test")


@pytest.fixture
def otlp(monkeypatch) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    tracing.shutdown()
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    assert tracing.configure()
    yield receiver
    tracing.shutdown()
    receiver.stop()


def _ids(span: AgentSpan) -> tuple[str, str]:
    context = span.get_span_context()
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def _traceparent(span: AgentSpan) -> str:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    assert carrier["traceparent"].split("-")[2] == _ids(span)[1]
    return carrier["traceparent"]


def _create(client: APIClient, traceparent: str, key: str = "key-1", **extra: object):
    response = client.post(
        "/api/v1/requests",
        {**BODY, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        HTTP_TRACEPARENT=traceparent,
    )
    assert response.status_code == 201, response.content
    return ApprovalRequest.objects.get(code=response.json()["id"])


def test_a_requests_spans_join_the_agents_trace(otlp, agent_client) -> None:
    with _agent_tracer.start_as_current_span("refund the customer") as agent_span:
        traceparent = _traceparent(agent_span)
        approval = _create(agent_client, traceparent)
    trace_id, agent_span_id = _ids(agent_span)
    assert approval.traceparent == traceparent

    approval_request_approve(approval=approval, reviewer=UserFactory(username="ana"))
    report = {"status": "failed", "error": "CardDeclined: card_declined", "duration_ms": 412}
    response = agent_client.post(f"/api/v1/requests/{approval.code}/outcome", report, "json")
    assert response.status_code == 201, response.content

    (create,) = otlp.wait_for("approval.create ")
    (policy,) = otlp.wait_for("approval.policy ")
    (wait,) = otlp.wait_for("approval.wait ")
    (executed,) = otlp.wait_for("execute_tool ")
    for span in (create, policy, wait, executed):
        assert span.trace_id == trace_id, span.name
        assert span.attributes["gen_ai.tool.name"] == "issue_refund"
        assert span.attributes["gen_ai.tool.call.id"] == str(approval.code)
        assert span.attributes["approval.request.id"] == str(approval.code)
        assert span.attributes["gen_ai.agent.name"] == "refund-bot"
        assert span.service_name == "agent-approval-console"
    # The console's spans hang under the agent's; the policy's verdict inside the creation.
    assert create.parent_span_id == wait.parent_span_id == executed.parent_span_id
    assert create.parent_span_id == agent_span_id
    assert policy.parent_span_id == create.span_id
    assert create.name == "approval.create issue_refund"
    assert create.attributes["approval.status"] == "pending"
    assert policy.attributes["approval.policy.outcome"] == "hold"
    assert create.start_ns <= policy.start_ns <= policy.end_ns <= create.end_ns

    assert wait.attributes["approval.decision"] == "approved"
    assert wait.attributes["approval.decision.by"] == "person"
    assert wait.attributes["approval.impact"] == "high"
    assert wait.attributes["approval.confidence"] == 0.42
    assert wait.attributes["approval.decision.arguments_changed"] is False
    approval.refresh_from_db()
    assert approval.decided_at is not None
    waited_ms = (approval.decided_at - approval.created_at).total_seconds() * 1000
    assert abs(wait.attributes["approval.waited_ms"] - waited_ms) <= 1
    assert wait.end_ns - wait.start_ns == pytest.approx(waited_ms * 1e6, abs=2e6)

    assert executed.name == "execute_tool issue_refund"
    assert executed.attributes["gen_ai.operation.name"] == "execute_tool"
    assert executed.attributes["approval.outcome.status"] == "failed"
    assert executed.attributes["approval.outcome.duration_ms"] == 412
    assert executed.end_ns - executed.start_ns == 412_000_000
    assert executed.status_code == 2  # ERROR
    assert executed.status_message == "CardDeclined: card_declined"
    assert executed.attributes["error.type"] == "CardDeclined"


def test_the_sdk_sends_its_trace_context_through_the_fast_path(
    otlp, live_console, agent_and_token
) -> None:
    # The SDK's client, inside a span of the agent's: the create goes to the fast path (the
    # ASGI middleware that answers agents' creates before Django), the long poll after it.
    agent, token = agent_and_token
    reviewer_thread = Reviewer(agent)
    reviewer_thread.decide(
        lambda approval: approval_request_deny(
            approval=approval, reviewer=UserFactory(username="ana"), reason="No."
        )
    )
    with (
        Console(live_console.url, token, retry=FAST_RETRY) as console,
        _agent_tracer.start_as_current_span("the agent's step") as agent_span,
    ):
        decision = console.request_approval("issue_refund", {"payment_id": "pay_2"})
    reviewer_thread.join()
    assert decision.status == "denied"

    trace_id, agent_span_id = _ids(agent_span)
    (create,) = otlp.wait_for("approval.create ")
    (wait,) = otlp.wait_for("approval.wait ")
    assert (create.trace_id, create.parent_span_id) == (trace_id, agent_span_id)
    assert (wait.trace_id, wait.parent_span_id) == (trace_id, agent_span_id)
    assert wait.attributes["approval.decision"] == "denied"


def test_aap_and_humanlayer_calls_join_the_trace_too(otlp, agent_and_token) -> None:
    instance = provision(bearer(provisioner_token_create(name="platform").plaintext))
    _, token = agent_and_token
    humanlayer = APIClient()
    humanlayer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    with _agent_tracer.start_as_current_span("aap") as aap_span:
        response = instance.create(REFUND, HTTP_TRACEPARENT=_traceparent(aap_span))
        assert response.status_code == 201, response.content
    with _agent_tracer.start_as_current_span("humanlayer") as hl_span:
        response = humanlayer.post(
            "/humanlayer/v1/function_calls",
            {"run_id": "r1", "call_id": "c1", "spec": {"fn": "send_email", "kwargs": {}}},
            format="json",
            HTTP_TRACEPARENT=_traceparent(hl_span),
        )
        assert response.status_code in {200, 201}, response.content

    created = {span.name: span for span in otlp.wait_for("approval.create ", 2)}
    aap = created["approval.create issue_refund"]
    assert aap.attributes["approval.source"] == "aap"
    assert (aap.trace_id, aap.parent_span_id) == _ids(aap_span)
    humanlayer_call = created["approval.create send_email"]
    assert (humanlayer_call.trace_id, humanlayer_call.parent_span_id) == _ids(hl_span)


def test_expiry_and_the_not_reported_mark_are_spans_too(otlp, agent_and_token, settings) -> None:
    agent, _ = agent_and_token
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    overdue = ApprovalRequestFactory(
        agent=agent, traceparent=parent, deadline_at=timezone.now() - timedelta(seconds=1)
    )
    approval_request_expire_if_overdue(approval=overdue)
    settings.APPROVAL_VALIDITY_SECONDS = 0
    approved = approval_request_approve(
        approval=ApprovalRequestFactory(agent=agent, traceparent=parent),
        reviewer=UserFactory(username="ana"),
    )
    assert approval_outcomes_mark_not_reported(now=timezone.now() + timedelta(seconds=1))

    waits = {s.attributes["approval.request.id"]: s for s in otlp.wait_for("approval.wait ", 2)}
    assert waits[str(overdue.code)].attributes["approval.decision"] == "expired"
    assert waits[str(overdue.code)].attributes["approval.decision.by"] == "console"
    (unknown,) = otlp.wait_for("approval.outcome ")
    assert unknown.attributes["approval.outcome.status"] == "not_reported"
    assert unknown.attributes["approval.request.id"] == str(approved.code)
    assert "gen_ai.operation.name" not in unknown.attributes  # it never ran: no execute_tool
    for span in [*waits.values(), unknown]:
        assert (span.trace_id, span.parent_span_id) == (
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
        )


def test_a_parent_the_agent_did_not_sample_is_respected(otlp, agent_client) -> None:
    # flags 00: the agent's tracer dropped this trace, so the console records none of it.
    unsampled = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"
    _create(agent_client, unsampled, key="unsampled")
    with _agent_tracer.start_as_current_span("sampled") as agent_span:
        _create(agent_client, _traceparent(agent_span), key="sampled")

    otlp.wait_for("approval.create ")
    assert {span.trace_id for span in otlp.spans} == {_ids(agent_span)[0]}


def test_a_malformed_traceparent_is_ignored_and_the_console_starts_its_own_trace(
    otlp, agent_client
) -> None:
    approval = _create(agent_client, "00-NOT-A-TRACE-01")
    assert approval.traceparent == ""
    (create,) = otlp.wait_for("approval.create ")
    assert create.parent_span_id == ""  # a root span, in a trace of its own


def test_nothing_is_set_up_without_an_endpoint(monkeypatch, agent_client) -> None:
    tracing.shutdown()
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure() is False
    assert not tracing.enabled()
    with _agent_tracer.start_as_current_span("untraced console") as agent_span:
        traceparent = _traceparent(agent_span)
        approval = _create(agent_client, traceparent)
    # Stored all the same: spans recorded later (another process, tracing on) still join it.
    assert approval.traceparent == traceparent


def test_the_traces_endpoint_variable_alone_turns_it_on(monkeypatch) -> None:
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}
    assert tracing.configured_endpoint(environ) == environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    assert tracing.configured_endpoint({**environ, "OTEL_SDK_DISABLED": "true"}) == ""
    assert tracing.configured_endpoint({}) == ""


@pytest.mark.parametrize(
    ("header", "stored"),
    [
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        # A later version may add fields: its first four are read as version 00.
        (
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", ""),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ""),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", ""),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", ""),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", ""),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", ""),
        ("", ""),
    ],
)
def test_it_reads_only_valid_traceparent_headers(header: str, stored: str) -> None:
    assert tracing.traceparent_from_header(header) == stored


def test_spans_wait_for_the_commit(otlp, agent_client) -> None:
    # A creation that rolls back records nothing: the span builder runs on commit.
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        _create(agent_client, "00-2af7651916cd43dd8448eb211c80319c-d7ad6b7169203331-01")
        raise RuntimeError("roll back")
    _create(agent_client, "00-3af7651916cd43dd8448eb211c80319c-e7ad6b7169203331-01", key="k2")
    otlp.wait_for("approval.create ")
    assert {span.trace_id for span in otlp.spans} == {"3af7651916cd43dd8448eb211c80319c"}
