"""A request's spans (console.tracing): its creation, the policy's verdict, the wait for a person,
and the outcome, each under the agent's span that asked (the request's stored `traceparent`).

Names follow the OpenTelemetry GenAI conventions where they have one (a tool call:
`gen_ai.tool.name`, `gen_ai.tool.call.id`, `gen_ai.agent.name`; the call's execution is an
`execute_tool` span), and everything of the console's own is under `approval.`. Only called
when tracing is on (console.tracing.enabled()); each function reads what it needs itself.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from approvals.models import ApprovalRequest, OutcomeStatus, RequestOutcome, Status
from console import tracing

# The SDK reports a failure as "<ExceptionType>: <message>": the type is a fair `error.type`.
_ERROR_TYPE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]{0,99}):")
# Agent-supplied text in a status description: enough to recognise, never the whole body.
MAX_ERROR_TEXT = 500


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


def _request_attributes(approval: ApprovalRequest) -> dict[str, tracing.AttributeValue | None]:
    return {
        "gen_ai.tool.name": approval.tool,
        # The console's id for this one gated call (the model's own call id is not sent).
        "gen_ai.tool.call.id": str(approval.code),
        "gen_ai.agent.name": approval.agent.name,
        "gen_ai.agent.id": str(approval.agent.code),
        "approval.request.id": str(approval.code),
        "approval.kind": approval.kind,
        "approval.source": approval.source,
        "approval.impact": approval.impact,
        "approval.confidence": approval.confidence,
        "approval.run.id": str(approval.run.code) if approval.run_id and approval.run else None,
    }


@dataclass(frozen=True)
class CreatedSpans:
    """One new request and when its creation and policy verdict ran (time.time_ns())."""

    approval: ApprovalRequest
    started_ns: int
    policy_started_ns: int
    policy_ended_ns: int


def spans_created(created: list[CreatedSpans], *, ended_ns: int) -> None:
    """`approval.create {tool}` under the agent's span, and `approval.policy {tool}` in it."""
    for item in created:
        approval = item.approval
        attributes = _request_attributes(approval)
        evaluation = approval.policy_evaluation
        policy = tracing.SpanRecord(
            f"approval.policy {approval.tool}",
            start_ns=item.policy_started_ns,
            end_ns=item.policy_ended_ns,
            attributes={
                **attributes,
                "approval.policy.outcome": evaluation.outcome,
                "approval.policy.decided_by": evaluation.decided_by,
                "approval.policy.rule": evaluation.rule_name or None,
            },
        )
        create = tracing.SpanRecord(
            f"approval.create {approval.tool}",
            start_ns=item.started_ns,
            end_ns=ended_ns,
            attributes={**attributes, "approval.status": approval.status},
            children=(policy,),
        )
        tracing.export([create], traceparent=approval.traceparent)


def span_waited(*, approval_id: int) -> None:
    """`approval.wait {tool}`: from the request's creation to its decision, with the decision,
    who made it, the request's impact and the agent's confidence, and the time waited."""
    approval = (
        ApprovalRequest.objects.select_related("agent", "run", "decision")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None or approval.decided_at is None:
        return
    decision = getattr(approval, "decision", None)
    waited_ms = max(0, int((approval.decided_at - approval.created_at).total_seconds() * 1000))
    wait = tracing.SpanRecord(
        f"approval.wait {approval.tool}",
        start_ns=_ns(approval.created_at),
        end_ns=_ns(approval.decided_at),
        attributes={
            **_request_attributes(approval),
            "approval.decision": approval.status,
            "approval.decision.by": (
                "person" if decision is not None and decision.reviewer_id else "console"
            ),
            "approval.decision.arguments_changed": (
                decision is not None
                and approval.status == Status.APPROVED
                and decision.approved_arguments is not None
                and decision.approved_arguments != approval.arguments
            ),
            "approval.waited_ms": waited_ms,
        },
    )
    tracing.export([wait], traceparent=approval.traceparent)


def span_outcome(*, approval_id: int) -> None:
    """The outcome, when it is known: an `execute_tool {tool}` span for a call that ran
    (its reported duration, an error status when it failed), `approval.outcome {tool}` for one
    that did not (not executed, or never reported)."""
    outcome = (
        RequestOutcome.objects.select_related("approval__agent", "approval__run")
        .filter(approval_id=approval_id)
        .first()
    )
    if outcome is None:
        return
    approval = outcome.approval
    ran = outcome.status in {OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED}
    end_ns = _ns(outcome.reported_at)
    start_ns = end_ns - (outcome.duration_ms or 0) * 1_000_000 if ran else end_ns
    attributes = {
        **_request_attributes(approval),
        "approval.outcome.status": outcome.status,
        "approval.outcome.source": outcome.source,
        "approval.outcome.duration_ms": outcome.duration_ms,
        "approval.outcome.cost": None if outcome.cost is None else float(outcome.cost),
        "approval.outcome.currency": outcome.currency or None,
    }
    if ran:
        attributes["gen_ai.operation.name"] = "execute_tool"
    failed = outcome.status == OutcomeStatus.FAILED
    match = _ERROR_TYPE.match(outcome.error) if failed else None
    span = tracing.SpanRecord(
        f"execute_tool {approval.tool}" if ran else f"approval.outcome {approval.tool}",
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attributes,
        error=(outcome.error or "failed")[:MAX_ERROR_TEXT] if failed else None,
        error_type=match.group(1) if match else None,
    )
    tracing.export([span], traceparent=approval.traceparent)
