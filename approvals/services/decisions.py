"""What a decision writes: its Decision row, its history event and its audit record.

Built in one place for both ways a request is decided: at creation, when the policy decides
(written in bulk with the batch), and by a transition (approvals.services.transitions).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from agents.models import Agent
from approvals.audit import AuditAction, AuditEntry
from approvals.models import ApprovalEvent, ApprovalRequest, Decision, Status
from console.new_instances import instance_new
from console.request_context import RequestContext

AUDIT_ACTION_BY_OUTCOME: dict[str, AuditAction] = {
    Status.APPROVED: AuditAction.REQUEST_APPROVED,
    Status.DENIED: AuditAction.REQUEST_DENIED,
    Status.EXPIRED: AuditAction.REQUEST_EXPIRED,
    Status.CANCELLED: AuditAction.REQUEST_CANCELLED,
}


@dataclass(frozen=True)
class DecisionRecords:
    """Unsaved: the caller inserts them in its transaction (alone, or with a batch)."""

    decision: Decision
    event: ApprovalEvent
    audit: AuditEntry


# long: every row one decision writes (decision, event, audit), built side by side
def decision_records_build(
    *,
    approval: ApprovalRequest,
    status: str,
    actor_type: str,
    decided_at: datetime,
    note: str = "",
    actor_user: User | None = None,
    actor_agent: Agent | None = None,
    approved_arguments: dict[str, Any] | None = None,
    suggested_arguments: dict[str, Any] | None = None,
    answer: Any = None,
    event_kind: str | None = None,
    origin: RequestContext | None = None,
) -> DecisionRecords:
    """The records of `approval` moving from pending to `status` at `decided_at`.

    An approval is valid for APPROVAL_VALIDITY_SECONDS from the decision: the agent must start
    the call before then, or not at all.
    """
    expires_at = (
        decided_at + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS)
        if status == Status.APPROVED
        else None
    )
    decision = instance_new(
        Decision,
        approval=approval,  # not its id: a new request may get it when the rows are written
        status=status,
        reviewer=actor_user,
        note=note,
        decided_at=decided_at,
        expires_at=expires_at,
        approved_arguments=approved_arguments,
        suggested_arguments=suggested_arguments,
        answer=answer,
    )
    event = instance_new(
        ApprovalEvent,
        approval=approval,  # not its id: a new request may get it when the rows are written
        kind=event_kind or status,
        from_status=Status.PENDING,
        to_status=status,
        actor_type=actor_type,
        actor_user=actor_user,
        actor_agent=actor_agent,
        note=note,
    )
    audit = AuditEntry(
        action=AUDIT_ACTION_BY_OUTCOME[status],
        actor=actor_user or actor_agent,
        target=approval,
        before={"status": Status.PENDING},
        after={
            "status": status,
            "note": note,
            "expires_at": expires_at,
            "approved_arguments": approved_arguments,
            **({"answer": answer} if answer is not None else {}),
        },
        origin=origin,
    )
    return DecisionRecords(decision=decision, event=event, audit=audit)
