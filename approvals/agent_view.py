"""What an agent is told about its request: one plain function, no DRF.

Every agent-facing surface answers with it (the native API and its fast path, the long poll's
wake-up in approvals.realtime), so a pushed answer and a read one are the same. The agent API's
output serializers (ApprovalRequestOutput) document this shape in the OpenAPI schema; a test
holds the two equal.
"""

from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone

from approvals.models import ApprovalRequest, Decision, RequestOutcome, Status


def _when(moment: datetime | None, zone: tzinfo) -> str | None:
    # As DRF writes datetimes: ISO 8601 in the current time zone (`zone`, looked up once per
    # view: the lookup cost twice the conversion), UTC as "Z".
    if moment is None:
        return None
    text = moment.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _decision_view(decision: Decision, approval: ApprovalRequest, zone: tzinfo) -> dict[str, Any]:
    approved = decision.status == Status.APPROVED
    return {
        "status": str(decision.status),
        "note": str(decision.note),
        "decided_at": _when(decision.decided_at, zone),
        "expires_at": _when(decision.expires_at, zone),
        "decided_by": "reviewer" if decision.reviewer_id else "system",
        "approved_arguments": (
            (
                decision.approved_arguments
                if decision.approved_arguments is not None
                else approval.arguments
            )
            if approved
            else None
        ),
        "arguments_changed": decision.approved_arguments is not None,
        "answer": decision.answer if approved else None,
    }


def _policy_view(approval: ApprovalRequest) -> dict[str, Any] | None:
    evaluation = getattr(approval, "policy_evaluation", None)
    if evaluation is None:
        return None
    return {
        "rule": str(evaluation.rule_name) or None,
        "outcome": str(evaluation.outcome),
        "reason": str(evaluation.reason),
        "decided_by": str(evaluation.decided_by),
        # From the copy handed in, not the evaluation's cached one: a decision's view is built
        # from the row it locked, whose team an escalation may have changed since.
        "team": team.name if (team := evaluation.held_for_team_of(approval)) else None,
        "required_approvals": int(approval.required_approvals),
        "on_timeout": str(evaluation.on_timeout),
        "shadow_matches": [
            {"rule": str(m["rule"]), "outcome": str(m["outcome"]), "reason": str(m["reason"])}
            for m in evaluation.shadow_matches
        ],
    }


def outcome_view(outcome: RequestOutcome | None) -> dict[str, Any] | None:
    """What happened after the decision, as the agent and reviewer APIs show it."""
    if outcome is None:
        return None
    return {
        "status": str(outcome.status),
        "result": outcome.result,
        "error": str(outcome.error),
        "duration_ms": None if outcome.duration_ms is None else int(outcome.duration_ms),
        "cost": None if outcome.cost is None else str(outcome.cost),
        "currency": str(outcome.currency) or None,
        "source": str(outcome.source),
        "reported_at": _when(outcome.reported_at, timezone.get_current_timezone()),
    }


def approval_outcome(approval: ApprovalRequest) -> RequestOutcome | None:
    """The request's outcome, or None (a reverse one-to-one raises when absent)."""
    try:
        return approval.outcome
    except RequestOutcome.DoesNotExist:
        return None


def approval_request_representation(approval: ApprovalRequest) -> dict[str, Any]:
    """The request as the agent API shows it (the OpenAPI schema's ApprovalRequest)."""
    zone = timezone.get_current_timezone()
    view: dict[str, Any] = {
        "id": str(approval.code),
        "tool": str(approval.tool),
        "arguments": approval.arguments,
        "timeout": str(approval.timeout),
        "summary": str(approval.summary),
        "reasoning": str(approval.reasoning),
        "context": approval.context,
        "confidence": None if approval.confidence is None else float(approval.confidence),
        "impact": str(approval.impact),
        "status": str(approval.status),
        "hold_reason": str(approval.hold_reason),
        "run": str(approval.run.code) if approval.run is not None else None,
        "labels": None if approval.labels is None else [str(label) for label in approval.labels],
        "links": [
            {"label": str(link["label"]), "url": str(link["url"])} for link in approval.links
        ],
        "arguments_schema": approval.arguments_schema,
        "kind": str(approval.kind),
        "answer_schema": approval.answer_schema,
        "created_at": _when(approval.created_at, zone),
        "deadline_at": _when(approval.deadline_at, zone),
        "policy": _policy_view(approval),
        "outcome": outcome_view(approval_outcome(approval)),
    }
    if approval.status != Status.PENDING and hasattr(approval, "decision"):
        # Absent while pending, present once terminal; in the schema's order, before `policy`.
        view = {
            **{k: v for k, v in view.items() if k not in ("policy", "outcome")},
            "decision": _decision_view(approval.decision, approval, zone),
            "policy": view["policy"],
            "outcome": view["outcome"],
        }
    return view
