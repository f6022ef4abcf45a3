"""Read paths for approval requests.

Everything a reviewer reads starts from `approvals_visible_to` (approvals/access.py).
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    F,
    FloatField,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from agents.models import Agent, Run, TraceEvent
from approvals.access import approvals_visible_to, reviewer_may_see
from approvals.models import (
    IMPACT_RANK,
    ApprovalRequest,
    Channel,
    Impact,
    Notification,
    Status,
)


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    """One request with what its queue row and decision panel show (claim, votes, viewers)."""
    approval = (
        ApprovalRequest.objects.select_related(
            "agent", "team", "decision", "decision__reviewer", "claim__reviewer"
        )
        .prefetch_related("votes__reviewer", "presences__reviewer")
        .get(pk=approval_id)
    )
    return approvals_decorate([approval])[0]


def approval_get_for_agent(*, agent: Agent, code: object) -> ApprovalRequest | None:
    """An agent sees only its own requests; anything else is indistinguishable from absent."""
    return (
        ApprovalRequest.objects.select_related("decision", "run", "policy_evaluation", "team")
        .filter(agent=agent, code=code)
        .first()
    )


def approval_get_for_reviewer(*, user: Any, code: object) -> ApprovalRequest | None:
    """A request the user may see (approvals/access.py), or None: absent and hidden look alike."""
    approval = (
        approvals_visible_to(user=user)
        .select_related(
            "agent",
            "team",
            "run",
            "policy_evaluation",
            "decision",
            "decision__reviewer",
            "claim__reviewer",
        )
        .prefetch_related("votes__reviewer", "presences__reviewer")
        .filter(code=code)
        .first()
    )
    return approvals_decorate([approval])[0] if approval is not None else None


def approval_risk(approval: ApprovalRequest) -> float:
    """Impact rank (0-3) plus how unsure the agent was (1 - confidence; unstated counts as 1).

    The threshold that paused a request lives in its hold_reason as words, so the shortfall below
    it is measured from certainty: the order is the same for any one threshold.
    """
    confidence = approval.confidence if approval.confidence is not None else 0.0
    return IMPACT_RANK.get(approval.impact, 1) + (1.0 - confidence)  # type: ignore[call-overload]


def presence_stale_before(*, now: datetime) -> datetime:
    """Presence not refreshed since then belongs to a closed page or a dead server process."""
    return now - timedelta(seconds=2 * settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS)


def approvals_decorate(
    approvals: list[ApprovalRequest], *, now: datetime | None = None
) -> list[ApprovalRequest]:
    """Attach what rows and panels show: the live claim, viewers, votes and risk."""
    now = now or timezone.now()
    stale_before = presence_stale_before(now=now)
    for approval in approvals:
        claim = getattr(approval, "claim", None)
        approval.live_claim = claim if claim is not None and claim.expires_at > now else None  # type: ignore[attr-defined]
        # Filtered here, not in the query: presences are prefetched for many rows at once.
        approval.viewers = sorted(  # type: ignore[attr-defined]
            {
                presence.reviewer.get_username()
                for presence in approval.presences.all()
                if presence.seen_at > stale_before
            }
        )
        approval.voters = [vote.reviewer.get_username() for vote in approval.votes.all()]  # type: ignore[attr-defined]
        approval.risk = round(approval_risk(approval), 3)  # type: ignore[attr-defined]
    return approvals


@dataclass(frozen=True)
class QueueFilters:
    agent: str = ""
    tool: str = ""
    impact: str = ""
    team: str = ""  # a team name
    mine: bool = False  # claimed by me
    q: str = ""

    @classmethod
    def from_query(cls, params: Any) -> "QueueFilters":
        impact = params.get("impact", "")
        return cls(
            agent=params.get("agent", "").strip()[:200],
            tool=params.get("tool", "").strip()[:200],
            impact=impact if impact in Impact.values else "",
            team=params.get("team", "").strip()[:100],
            mine=params.get("mine", "") in {"1", "true", "on"},
            q=params.get("q", "").strip()[:200],
        )

    @property
    def active(self) -> bool:
        return any([self.agent, self.tool, self.impact, self.team, self.mine, self.q])


def _searched(approvals: QuerySet[ApprovalRequest], q: str) -> QuerySet[ApprovalRequest]:
    if not q:
        return approvals
    # Arguments are searched as their JSON text: works the same on SQLite and PostgreSQL.
    return approvals.annotate(arguments_text=Cast("arguments", TextField())).filter(
        Q(tool__icontains=q) | Q(summary__icontains=q) | Q(arguments_text__icontains=q)
    )


def _filtered(
    approvals: QuerySet[ApprovalRequest], filters: QueueFilters, user: Any
) -> QuerySet[ApprovalRequest]:
    approvals = _searched(approvals, filters.q)
    if filters.agent:
        approvals = approvals.filter(agent__name=filters.agent)
    if filters.tool:
        approvals = approvals.filter(tool=filters.tool)
    if filters.impact:
        approvals = approvals.filter(impact=filters.impact)
    if filters.team:
        approvals = approvals.filter(team__name=filters.team)
    if filters.mine:
        approvals = approvals.filter(claim__reviewer=user, claim__expires_at__gt=timezone.now())
    return approvals


def _for_rows(approvals: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return approvals.select_related(
        "agent", "team", "decision", "decision__reviewer", "claim__reviewer"
    ).prefetch_related("votes__reviewer", "presences__reviewer")


def approvals_queue(*, user: Any, filters: QueueFilters) -> list[ApprovalRequest]:
    """Pending requests the user may decide: urgent first, then by risk, then by deadline.

    Urgent: due within APPROVAL_URGENT_SECONDS, an on-call reviewer's first job whatever the
    risk. static/js/console.js re-applies the same order after live inserts.
    """
    now = timezone.now()
    impact_rank = Case(
        *[When(impact=impact, then=Value(rank)) for impact, rank in IMPACT_RANK.items()],
        default=Value(1),
        output_field=IntegerField(),
    )
    pending = approvals_visible_to(user=user).filter(status=Status.PENDING)
    ordered = (
        _for_rows(_filtered(pending, filters, user))
        .annotate(
            urgent=Case(
                When(
                    deadline_at__lte=now + timedelta(seconds=settings.APPROVAL_URGENT_SECONDS),
                    then=Value(1),
                ),
                default=Value(0),
                output_field=IntegerField(),
            ),
            risk_score=impact_rank
            + Value(1.0, output_field=FloatField())
            - Coalesce(F("confidence"), Value(0.0, output_field=FloatField())),
        )
        .order_by("-urgent", "-risk_score", "deadline_at", "id")
    )
    return approvals_decorate(list(ordered[:500]))


def approvals_history(
    *, user: Any, filters: QueueFilters, limit: int = 100
) -> list[ApprovalRequest]:
    """Decided requests the user may see, newest decision first."""
    decided = approvals_visible_to(user=user).exclude(status=Status.PENDING)
    ordered = _for_rows(_filtered(decided, filters, user)).order_by("-decided_at", "-id")
    return approvals_decorate(list(ordered[:limit]))


@dataclass(frozen=True)
class FacetCounts:
    agents: list[tuple[str, int]]
    tools: list[tuple[str, int]]
    impacts: list[tuple[str, int]]
    teams: list[tuple[str, int]]
    mine: int
    total: int


def approvals_facet_counts(*, user: Any, filters: QueueFilters, pending: bool) -> FacetCounts:
    """How many requests each filter value would show, within the current search."""
    visible = approvals_visible_to(user=user)
    scope = (
        visible.filter(status=Status.PENDING) if pending else visible.exclude(status=Status.PENDING)
    )
    rows = list(
        _searched(scope, filters.q).values_list("agent__name", "tool", "impact", "team__name")
    )
    agents = Counter(row[0] for row in rows)
    tools = Counter(row[1] for row in rows)
    impacts = Counter(row[2] for row in rows)
    teams = Counter(row[3] or "(unrouted)" for row in rows)
    mine = (
        _searched(scope, filters.q)
        .filter(claim__reviewer=user, claim__expires_at__gt=timezone.now())
        .count()
    )
    return FacetCounts(
        agents=sorted(agents.items()),
        tools=sorted(tools.items()),
        impacts=[(impact, impacts.get(impact, 0)) for impact in Impact.values],
        teams=sorted(teams.items()),
        mine=mine,
        total=len(rows),
    )


@dataclass(frozen=True)
class TrackRecord:
    approved: int
    denied: int
    recent: list[ApprovalRequest]

    @property
    def decided(self) -> int:
        return self.approved + self.denied

    @property
    def approval_rate(self) -> int | None:
        return round(100 * self.approved / self.decided) if self.decided else None


def approval_track_record(*, user: Any, approval: ApprovalRequest, last: int = 5) -> TrackRecord:
    """How reviewers decided this agent's earlier calls of the same tool (that the user may see)."""
    earlier = (
        approvals_visible_to(user=user)
        .filter(
            agent_id=approval.agent_id,
            tool=approval.tool,
            status__in=[Status.APPROVED, Status.DENIED],
            decision__reviewer__isnull=False,
        )
        .exclude(pk=approval.pk)
    )
    counts = Counter(earlier.values_list("status", flat=True))
    recent = list(
        earlier.select_related("decision", "decision__reviewer").order_by("-decided_at")[:last]
    )
    return TrackRecord(
        approved=counts.get(Status.APPROVED, 0), denied=counts.get(Status.DENIED, 0), recent=recent
    )


def approvals_pending_queue() -> QuerySet[ApprovalRequest]:
    """Every pending request, soonest deadline first, with NO access filter.

    For system code (notifications, sweeps). A reviewer's view goes through `approvals_queue`.
    """
    return (
        ApprovalRequest.objects.select_related("agent")
        .filter(status=Status.PENDING)
        .order_by("deadline_at", "id")
    )


def approvals_recently_decided(*, limit: int = 20) -> QuerySet[ApprovalRequest]:
    """Recent decisions with NO access filter (system code; reviewers use `approvals_history`)."""
    return (
        ApprovalRequest.objects.select_related("agent", "decision", "decision__reviewer")
        .exclude(status=Status.PENDING)
        .order_by("-decided_at")[:limit]
    )


def approval_may_be_decided_by(*, approval: ApprovalRequest, user: object) -> bool:
    """The console's one access rule (approvals/access.py), for deciders outside the pages."""
    return reviewer_may_see(user=user, team_id=approval.team_id)


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
