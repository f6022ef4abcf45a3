"""Read paths for approval requests."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum

from agents.models import Agent, Run, TraceEvent
from approvals.models import ApprovalRequest, Status


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer").get(
        pk=approval_id
    )


def approval_get_for_agent(*, agent: Agent, code: object) -> ApprovalRequest | None:
    """An agent sees only its own requests; anything else is indistinguishable from absent."""
    return (
        ApprovalRequest.objects.select_related("decision", "run")
        .filter(agent=agent, code=code)
        .first()
    )


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


def approvals_pending_for_run(*, run: Run) -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(run=run, status=Status.PENDING).order_by("id")


@dataclass(frozen=True)
class TimelineEntry:
    """One row of a run's timeline: a trace event, or an approval request made in the run."""

    at: datetime
    event: TraceEvent | None = None
    approval: ApprovalRequest | None = None


@dataclass(frozen=True)
class RunTimeline:
    run: Run
    entries: list[TimelineEntry]
    # What the run had spent when the agent asked, and what it has spent by now.
    cost_when_asked: Decimal
    events_omitted: int


def run_timeline_for_approval(*, approval: ApprovalRequest, limit: int = 200) -> RunTimeline | None:
    """The run around an approval request: the latest `limit` trace events up to the request
    and the few after it, interleaved with the run's requests by server time."""
    if approval.run_id is None:
        return None
    run = Run.objects.get(pk=approval.run_id)
    before = TraceEvent.objects.filter(run=run, recorded_at__lte=approval.created_at)
    cost_when_asked = before.aggregate(total=Sum("cost"))["total"] or Decimal(0)
    earlier = list(before.order_by("-sequence")[:limit])[::-1]
    events_omitted = before.count() - len(earlier) if len(earlier) == limit else 0
    later = list(
        TraceEvent.objects.filter(run=run, recorded_at__gt=approval.created_at).order_by(
            "sequence"
        )[:limit]
    )
    entries = [TimelineEntry(at=event.recorded_at, event=event) for event in earlier + later]
    entries += [
        TimelineEntry(at=other.created_at, approval=other)
        for other in ApprovalRequest.objects.filter(run=run).order_by("created_at")[:limit]
    ]
    # Stable sort: on equal times a trace event stays before the request it led to.
    entries.sort(key=lambda entry: entry.at)
    return RunTimeline(
        run=run, entries=entries, cost_when_asked=cost_when_asked, events_omitted=events_omitted
    )
