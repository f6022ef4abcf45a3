"""Read paths for approval requests."""

from django.db.models import QuerySet

from agents.models import Agent
from approvals.models import ApprovalRequest, Channel, Notification, Status


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer").get(
        pk=approval_id
    )


def approval_get_for_agent(*, agent: Agent, code: object) -> ApprovalRequest | None:
    """An agent sees only its own requests; anything else is indistinguishable from absent."""
    return ApprovalRequest.objects.select_related("decision").filter(agent=agent, code=code).first()


def approval_get_for_reviewer(*, code: object) -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer")
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


def approval_may_be_decided_by(*, approval: ApprovalRequest, user: object) -> bool:
    """Staff, or a member of the team the request is routed to; unrouted requests are open to
    every active reviewer. Merge note: the reviewer console (issue 5) owns the final rule;
    this must call it once it exists."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_staff", False) or approval.team_id is None:
        return True
    return user.teams.filter(pk=approval.team_id).exists()  # type: ignore[attr-defined,no-any-return]


def notifications_for_reviewer(*, user: object, limit: int = 50) -> "QuerySet[Notification]":
    """The reviewer's in-console notifications, newest first."""
    return (
        Notification.objects.select_related("approval", "approval__agent")
        .filter(recipient=user, channel=Channel.CONSOLE)
        .order_by("-id")[:limit]
    )


def notifications_unread_after(
    *, user: object, after_id: int, limit: int = 20
) -> list[Notification]:
    """Unread console notifications newer than `after_id`, for the browser's notification poll."""
    return list(
        Notification.objects.select_related("approval")
        .filter(recipient=user, channel=Channel.CONSOLE, read_at__isnull=True, pk__gt=after_id)
        .order_by("id")[:limit]
    )
