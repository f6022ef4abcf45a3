"""Read paths for approval requests."""

from django.db.models import QuerySet

from agents.models import Agent
from approvals.models import ApprovalRequest, Status


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer").get(
        pk=approval_id
    )


def approval_get_for_agent(*, agent: Agent, code: object) -> ApprovalRequest | None:
    """An agent sees only its own requests; anything else is indistinguishable from absent."""
    return (
        ApprovalRequest.objects.select_related("decision", "policy_evaluation", "team")
        .filter(agent=agent, code=code)
        .first()
    )


def approval_get_for_reviewer(*, code: object) -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.select_related(
            "agent", "decision", "decision__reviewer", "policy_evaluation", "team"
        )
        .filter(code=code)
        .first()
    )


def approvals_pending_queue() -> QuerySet[ApprovalRequest]:
    """Pending requests, soonest deadline first."""
    return (
        ApprovalRequest.objects.select_related("agent")
        .filter(status=Status.PENDING)
        .order_by("deadline_at", "id")
    )


def approvals_recently_decided(*, limit: int = 20) -> QuerySet[ApprovalRequest]:
    return (
        ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer")
        .exclude(status=Status.PENDING)
        .order_by("-decided_at")[:limit]
    )
