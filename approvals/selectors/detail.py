"""Reading one request (or a few): for display, for an agent, for a reviewer, for a push; with
the decorations pages show (risk, proposals), track records, notifications and run timelines."""

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import (
    Count,
    Prefetch,
    QuerySet,
    Sum,
    prefetch_related_objects,
)
from django.utils import timezone

from agents.models import Agent, Run, TraceEvent
from approvals.access import approvals_visible_to, trace_events_visible
from approvals.models import (
    IMPACT_RANK,
    ApprovalClaim,
    ApprovalRequest,
    ApprovalVote,
    Channel,
    Decision,
    Notification,
    OutcomeTally,
    ReviewerPresence,
    Status,
)
from approvals.presentation import pretty_json
from console.hot_statements import columns_of, instance_from_row, statements_rows

# What a pushed queue fragment shows besides the row: votes, viewers, and the history list
# (each event's actor), fetched up front rather than one query per event while rendering.

_DISPLAY_PREFETCH = (
    "votes__reviewer",
    "presences__reviewer",
    "events__actor_user",
    "events__actor_agent",
)


def approval_lock(approval_id: int) -> ApprovalRequest | None:
    """The request's row, locked until the end of the transaction, found by primary key alone.

    Compare-and-set conditions (still pending? still this team's? before the deadline?) are
    checked on the locked row, not put in the locking statement: PostgreSQL plans a statement
    from table statistics, and with stale ones it took the pending-queue index for
    `team_id IS NULL` and walked every pending request (40 ms per decision at 150,000 pending).
    By primary key alone the plan cannot go wrong, and the lock orders every writer of the row
    just the same. (SQLite: transactions begin IMMEDIATE and so run one at a time anyway.)

    A fixed statement (console.hot_statements): prepared once per connection, and, as the first
    statement of a decision's transaction, sent with its `BEGIN` (one round trip fewer).
    """
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    (rows,) = statements_rows([(_LOCK_BY_ID.format(lock=lock), [approval_id])])
    return instance_from_row(ApprovalRequest, rows[0]) if rows else None


_LOCK_BY_ID = (
    # Quoted as both backends quote a table's name, as the ORM writes it.
    f'SELECT {columns_of(ApprovalRequest)} FROM "{ApprovalRequest._meta.db_table}" '  # noqa: S608 (our table)
    "WHERE id = %s{lock}"
)


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    """One request with what its queue row and decision panel show (claim, votes, viewers)."""
    approval = (
        ApprovalRequest.objects.select_related(
            "agent", "team", "decision", "decision__reviewer", "claim__reviewer", "outcome"
        )
        .prefetch_related(*_DISPLAY_PREFETCH)
        .get(pk=approval_id)
    )
    return approvals_decorate([approval])[0]


# A row shows none of the request's payload: those columns (JSON to decode, long texts) stay in
# the database when rows are read for a push or a page of the queue or the history.
PAYLOAD_FIELDS = (
    "arguments",
    "context",
    "arguments_schema",
    "arguments_raw",
    "context_raw",
    "server_raw",
    "reasoning",
    "labels",
    "links",
)


def approvals_get_for_created_rows(*, approval_ids: list[int]) -> list[ApprovalRequest]:
    """Requests just created, as queue and history rows show them, in the order given: one
    query, two if any was decided at once (its history row names the reviewer, if any).

    Claims, votes and viewers are left out: nobody has seen these requests yet. Should a
    reviewer claim one in the instant before this push, their claim's own push follows and
    shows it. (Called on every batch the intake writes: a fixed few queries per batch.)
    """
    rows = (
        ApprovalRequest.objects.defer(*PAYLOAD_FIELDS)
        .select_related("agent", "team")
        .in_bulk(approval_ids)
    )
    approvals = [rows[pk] for pk in approval_ids if pk in rows]
    if any(approval.status != Status.PENDING for approval in approvals):
        prefetch_related_objects(
            approvals, Prefetch("decision", queryset=Decision.objects.select_related("reviewer"))
        )
    return approvals_decorate(approvals, unseen=True)


def approval_get_for_agent(*, agent: Agent, code: UUID | str) -> ApprovalRequest | None:
    """An agent sees only its own requests; anything else is indistinguishable from absent."""
    return (
        ApprovalRequest.objects.select_related(
            "decision", "run", "policy_evaluation", "team", "outcome"
        )
        .filter(agent=agent, code=code)
        .first()
    )


def approval_get_for_reviewer(*, user: Any, code: UUID | str) -> ApprovalRequest | None:
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
            "outcome",
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


@dataclass(frozen=True)
class ProposedChange:
    """Changed arguments reviewers approved and that still wait for more approvals (a quorum,
    or another team the policy routes them to): others may approve exactly these."""

    arguments: Any
    approved_by: list[str]

    @property
    def pretty(self) -> str:
        return pretty_json(self.arguments)


def proposed_changes_of(votes: Iterable[ApprovalVote]) -> list[ProposedChange]:
    """The distinct changed arguments among a pending request's votes, first proposed first."""
    proposals: dict[str, ProposedChange] = {}
    for vote in votes:
        if vote.arguments is None:
            continue
        key = json.dumps(vote.arguments, sort_keys=True, separators=(",", ":"))
        proposal = proposals.setdefault(
            key, ProposedChange(arguments=vote.arguments, approved_by=[])
        )
        proposal.approved_by.append(vote.reviewer.get_username())
    return list(proposals.values())


# Lists of requests prefetch their votes and viewers into plain lists (to_attr): Django then
# sets one attribute per row, where filling each row's related manager cost a manager and a
# queryset per row (3.4 ms of CPU for a page of 50 rows). approvals_decorate reads either.
LISTED_VOTES = "listed_votes"
LISTED_PRESENCES = "listed_presences"


def review_state_prefetches() -> "list[Prefetch[Any]]":
    """What approvals_decorate reads for a list of requests: claim, votes and viewers, one
    query each however many requests."""
    return [
        Prefetch("claim", queryset=ApprovalClaim.objects.select_related("reviewer")),
        Prefetch(
            "votes", queryset=ApprovalVote.objects.select_related("reviewer"), to_attr=LISTED_VOTES
        ),
        Prefetch(
            "presences",
            queryset=ReviewerPresence.objects.select_related("reviewer"),
            to_attr=LISTED_PRESENCES,
        ),
    ]


def approvals_decorate(
    approvals: list[ApprovalRequest], *, now: datetime | None = None, unseen: bool = False
) -> list[ApprovalRequest]:
    """Attach what rows and panels show: the live claim, viewers, votes and risk.

    The claim, votes and viewers come prefetched: by review_state_prefetches, or through the
    related managers (one request's page).
    unseen: requests just created, which nobody can have claimed, voted on or viewed yet; their
    related rows are neither loaded nor read.
    """
    now = now or timezone.now()
    stale_before = presence_stale_before(now=now)
    for approval in approvals:
        if unseen:
            approval.live_claim, approval.viewers, approval.voters = None, [], []  # type: ignore[attr-defined]
            approval.proposals = []  # type: ignore[attr-defined]
            approval.risk = round(approval_risk(approval), 3)  # type: ignore[attr-defined]
            continue
        claim = getattr(approval, "claim", None)
        approval.live_claim = claim if claim is not None and claim.expires_at > now else None  # type: ignore[attr-defined]
        presences = getattr(approval, LISTED_PRESENCES, None)
        if presences is None:
            presences = approval.presences.all()
        votes = getattr(approval, LISTED_VOTES, None)
        if votes is None:
            votes = approval.votes.all()
        # Filtered here, not in the query: presences are prefetched for many rows at once.
        # Who is looking matters only while someone may still decide: on a decided request it
        # would read as if the decision were still open (its pages keep their sockets, and
        # reviewers keep opening it afterwards), so nobody is shown.
        approval.viewers = (  # type: ignore[attr-defined]
            sorted(
                {
                    presence.reviewer.get_username()
                    for presence in presences
                    if presence.seen_at > stale_before
                }
            )
            if approval.status == Status.PENDING
            else []
        )
        approval.voters = [vote.reviewer.get_username() for vote in votes]  # type: ignore[attr-defined]
        approval.proposals = proposed_changes_of(votes)  # type: ignore[attr-defined]
        approval.risk = round(approval_risk(approval), 3)  # type: ignore[attr-defined]
    return approvals


@dataclass(frozen=True)
class TrackRecord:
    approved: int
    denied: int
    recent: list[ApprovalRequest]
    # What happened after the approvals among them (approvals.models.OutcomeTally).
    outcomes: OutcomeTally = field(default_factory=OutcomeTally)

    @property
    def decided(self) -> int:
        return self.approved + self.denied

    @property
    def approval_rate(self) -> int | None:
        return round(100 * self.approved / self.decided) if self.decided else None


def approval_track_record(*, user: Any, approval: ApprovalRequest, last: int = 5) -> TrackRecord:
    """How reviewers decided this agent's earlier calls of the same tool (that the user may see),
    and what the approved ones did when they ran: one query for the counts, one for the recent."""
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
    counts: Counter[str] = Counter()
    outcomes = OutcomeTally()
    for status, outcome_status, count in (
        earlier.order_by()
        .values("status", "outcome__status")
        .annotate(count=Count("pk"))
        .values_list("status", "outcome__status", "count")
    ):
        counts[status] += count
        if status == Status.APPROVED:
            outcomes.add(outcome_status, count)
    shown = earlier.select_related("decision", "decision__reviewer", "outcome")
    recent = list(shown.order_by("-decided_at")[:last])
    return TrackRecord(
        approved=counts.get(Status.APPROVED, 0),
        denied=counts.get(Status.DENIED, 0),
        recent=recent,
        outcomes=outcomes,
    )


def notifications_for_reviewer(*, user: User, limit: int = 50) -> "QuerySet[Notification]":
    """The reviewer's in-console notifications, newest first."""
    return (
        Notification.objects.select_related("approval", "approval__agent")
        .filter(recipient=user, channel=Channel.CONSOLE)
        .order_by("-id")[:limit]
    )


def notifications_unread_after(*, user: User, after_id: int, limit: int = 20) -> list[Notification]:
    """Unread console notifications newer than `after_id`, for the browser's notification poll."""
    return list(
        Notification.objects.select_related("approval__agent")
        .filter(recipient=user, channel=Channel.CONSOLE, read_at__isnull=True, pk__gt=after_id)
        .order_by("id")[:limit]
    )


def approvals_pending_for_run(*, run_id: int) -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(run_id=run_id, status=Status.PENDING).order_by("id")


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
    # The run's requests routed to teams the reader may not see: counted, never shown.
    approvals_elsewhere: int = 0
    # Trace events naming a request the reader may not see (its tool call): counted, never shown.
    events_elsewhere: int = 0


def run_timeline_for_reviewer(
    *, approval: ApprovalRequest, user: Any, limit: int = 200
) -> RunTimeline | None:
    """The run around an approval request, as `user` may see it: the latest `limit` trace events
    up to the request and the few after it, interleaved with the run's requests by server time.

    The run's other requests go through the access rule like any list: one routed to a team the
    reader is not in shows neither its tool, its status nor a link (the link would answer 404
    anyway); the timeline only says how many there are. So do the trace events naming such a
    request (approvals.access.trace_events_visible).
    """
    if approval.run_id is None:
        return None
    run = Run.objects.get(pk=approval.run_id)
    readable = approvals_visible_to(user=user)
    events = trace_events_visible(run=run, approvals=readable)
    # What the run had spent, every event's cost: the run's total, shown beside it, has them all.
    cost_when_asked = TraceEvent.objects.filter(
        run=run, recorded_at__lte=approval.created_at
    ).aggregate(total=Sum("cost"))["total"] or Decimal(0)
    before = events.filter(recorded_at__lte=approval.created_at)
    earlier = list(before.order_by("-sequence")[:limit])[::-1]
    events_omitted = before.count() - len(earlier) if len(earlier) == limit else 0
    later = list(events.filter(recorded_at__gt=approval.created_at).order_by("sequence")[:limit])
    entries = [TimelineEntry(at=event.recorded_at, event=event) for event in earlier + later]
    visible = readable.filter(run=run)
    entries += [
        TimelineEntry(at=other.created_at, approval=other)
        for other in visible.select_related("outcome").order_by("created_at")[:limit]
    ]
    elsewhere = ApprovalRequest.objects.filter(run=run).exclude(pk__in=visible.values("pk"))
    # Stable sort: on equal times a trace event stays before the request it led to.
    entries.sort(key=lambda entry: entry.at)
    return RunTimeline(
        run=run,
        entries=entries,
        cost_when_asked=cost_when_asked,
        events_omitted=events_omitted,
        approvals_elsewhere=elsewhere.count(),
        events_elsewhere=TraceEvent.objects.filter(run=run).count() - events.count(),
    )
