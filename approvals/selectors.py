"""Read paths for approval requests.

Everything a reviewer reads starts from `approvals_visible_to` (approvals/access.py).
"""

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import (
    Count,
    F,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    TextField,
    prefetch_related_objects,
)
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.functions import Cast
from django.utils import timezone

from agents.models import Agent, Run, TraceEvent
from approvals.access import approvals_visible_to, reviewer_may_see
from approvals.models import (
    IMPACT_RANK,
    ApprovalClaim,
    ApprovalRequest,
    ApprovalVote,
    Channel,
    Decision,
    Impact,
    Notification,
    ReviewerPresence,
    Status,
    Team,
)
from approvals.presentation import pretty_json

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
    """
    return ApprovalRequest.objects.select_for_update().filter(pk=approval_id).first()


def approval_get_for_display(*, approval_id: int) -> ApprovalRequest:
    """One request with what its queue row and decision panel show (claim, votes, viewers)."""
    approval = (
        ApprovalRequest.objects.select_related(
            "agent", "team", "decision", "decision__reviewer", "claim__reviewer"
        )
        .prefetch_related(*_DISPLAY_PREFETCH)
        .get(pk=approval_id)
    )
    return approvals_decorate([approval])[0]


# A row shows none of the request's payload: those columns (JSON to decode, long texts) stay in
# the database when rows are read for a push.
_NOT_IN_ROWS = (
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
        ApprovalRequest.objects.defer(*_NOT_IN_ROWS)
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
        ApprovalRequest.objects.select_related("decision", "run", "policy_evaluation", "team")
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


def approvals_decorate(
    approvals: list[ApprovalRequest], *, now: datetime | None = None, unseen: bool = False
) -> list[ApprovalRequest]:
    """Attach what rows and panels show: the live claim, viewers, votes and risk.

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
        # Filtered here, not in the query: presences are prefetched for many rows at once.
        approval.viewers = sorted(  # type: ignore[attr-defined]
            {
                presence.reviewer.get_username()
                for presence in approval.presences.all()
                if presence.seen_at > stale_before
            }
        )
        approval.voters = [vote.reviewer.get_username() for vote in approval.votes.all()]  # type: ignore[attr-defined]
        approval.proposals = proposed_changes_of(approval.votes.all())  # type: ignore[attr-defined]
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
        # queue_order is minus (impact rank + 1 - confidence): one impact's requests lie within
        # [-(rank + 1), -rank]. Said explicitly, the range lets the queue's index start at that
        # impact instead of filtering its way past every riskier request (16,000 rows at
        # 100,000 pending). The impact filter itself stays: the ranges share their ends.
        rank = IMPACT_RANK[filters.impact]  # type: ignore[index]
        approvals = approvals.filter(
            impact=filters.impact, queue_order__gte=-(rank + 1), queue_order__lte=-rank
        )
    if filters.team:
        approvals = approvals.filter(team__name=filters.team)
    if filters.mine:
        approvals = approvals.filter(claim__reviewer=user, claim__expires_at__gt=timezone.now())
    return approvals


def _for_rows(approvals: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    # Two joins only: every further table is one prefetch query (see _decorated_rows), which
    # PostgreSQL plans in no time, where a nine-table join took longer to plan than to run.
    return approvals.select_related("agent", "team")


def _decorated_rows(approvals: list[ApprovalRequest], *, full: bool) -> list[ApprovalRequest]:
    """What rows show, for all rows at once: one query per related table, whatever the count.

    full: also the decision, run and policy evaluation (the reviewer API's output, history).
    """
    related: list[str | Prefetch[Any]] = [
        Prefetch("claim", queryset=ApprovalClaim.objects.select_related("reviewer")),
        Prefetch("votes", queryset=ApprovalVote.objects.select_related("reviewer")),
        Prefetch("presences", queryset=ReviewerPresence.objects.select_related("reviewer")),
    ]
    if full:
        related += [
            Prefetch("decision", queryset=Decision.objects.select_related("reviewer")),
            "run",
            "policy_evaluation",
        ]
    prefetch_related_objects(approvals, *related)
    return approvals_decorate(approvals)


# The most rows one page or API call returns.
QUEUE_PAGE_MAX = 500


class InvalidCursor(ValueError):
    """A cursor this console did not hand out for this list."""


@dataclass(frozen=True)
class ApprovalPage:
    rows: list[ApprovalRequest]
    # Opaque; pass it back for the rows after these. None: this was the last page.
    next_cursor: str | None


def _cursor_encode(values: dict[str, Any]) -> str:
    text = json.dumps(values, separators=(",", ":"))
    return urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str, kind: str) -> dict[str, Any]:
    try:
        values = json.loads(urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise InvalidCursor("Not a cursor from this list.") from None
    if not isinstance(values, dict) or values.get("k") != kind:
        raise InvalidCursor("Not a cursor from this list.")
    return values


@dataclass(frozen=True)
class _QueuePosition:
    """Where a queue page ended. The urgency cutoff is fixed by the first page, so a request
    that becomes urgent while the reviewer pages on neither repeats nor goes missing."""

    cutoff: datetime
    urgent: bool
    queue_order: float
    deadline_at: datetime
    id: int

    def encode(self) -> str:
        return _cursor_encode(
            {
                "k": "queue",
                "c": self.cutoff.isoformat(),
                "u": self.urgent,
                "o": self.queue_order,
                "d": self.deadline_at.isoformat(),
                "i": self.id,
            }
        )

    @classmethod
    def decode(cls, cursor: str) -> "_QueuePosition":
        values = _cursor_decode(cursor, "queue")
        try:
            return cls(
                cutoff=datetime.fromisoformat(values["c"]),
                urgent=bool(values["u"]),
                queue_order=float(values["o"]),
                deadline_at=datetime.fromisoformat(values["d"]),
                id=int(values["i"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidCursor("Not a cursor from this list.") from None


_QUEUE_ORDER = ("queue_order", "deadline_at", "id")


def _after_in_queue(position: _QueuePosition) -> TupleGreaterThan:
    return TupleGreaterThan(
        Tuple(*(F(field) for field in _QUEUE_ORDER)),
        (position.queue_order, position.deadline_at, position.id),
    )


def approvals_queue_page(
    *,
    user: Any,
    filters: QueueFilters,
    limit: int = QUEUE_PAGE_MAX,
    cursor: str | None = None,
    full: bool = False,
) -> ApprovalPage:
    """Pending requests the user may decide: urgent first, then by risk, then by deadline.

    Urgent: due within APPROVAL_URGENT_SECONDS, an on-call reviewer's first job whatever the
    risk. static/js/console.js re-applies the same order after live inserts. Urgent and other
    requests are read apart, each in index order (approval_queue_order): a page costs the same
    at any depth and however many requests wait. Raises InvalidCursor for a foreign cursor.
    """
    position = _QueuePosition.decode(cursor) if cursor else None
    cutoff = (
        position.cutoff
        if position
        else timezone.now() + timedelta(seconds=settings.APPROVAL_URGENT_SECONDS)
    )
    pending = _for_rows(
        _filtered(approvals_visible_to(user=user).filter(status=Status.PENDING), filters, user)
    )
    rows: list[ApprovalRequest] = []
    if position is None or position.urgent:
        urgent = pending.filter(deadline_at__lte=cutoff)
        if position is not None:
            urgent = urgent.filter(_after_in_queue(position))
        rows += urgent.order_by(*_QUEUE_ORDER)[: limit + 1]
    if len(rows) <= limit:
        later = pending.filter(deadline_at__gt=cutoff)
        if position is not None and not position.urgent:
            later = later.filter(_after_in_queue(position))
        rows += later.order_by(*_QUEUE_ORDER)[: limit + 1 - len(rows)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _QueuePosition(
            cutoff=cutoff,
            urgent=last.deadline_at <= cutoff,
            queue_order=last.queue_order,
            deadline_at=last.deadline_at,
            id=last.pk,
        ).encode()
    return ApprovalPage(rows=_decorated_rows(rows, full=full), next_cursor=next_cursor)


def approvals_queue(
    *, user: Any, filters: QueueFilters, limit: int = QUEUE_PAGE_MAX
) -> list[ApprovalRequest]:
    """The first page of the queue (see approvals_queue_page)."""
    return approvals_queue_page(user=user, filters=filters, limit=limit).rows


def approvals_history_page(
    *,
    user: Any,
    filters: QueueFilters,
    limit: int = 100,
    cursor: str | None = None,
    full: bool = True,
) -> ApprovalPage:
    """Decided requests the user may see, newest decision first, in index order
    (approval_decided_order). Raises InvalidCursor for a foreign cursor."""
    decided = _for_rows(
        _filtered(approvals_visible_to(user=user).exclude(status=Status.PENDING), filters, user)
    )
    if cursor:
        values = _cursor_decode(cursor, "decided")
        try:
            after = (datetime.fromisoformat(values["d"]), int(values["i"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidCursor("Not a cursor from this list.") from None
        decided = decided.filter(TupleLessThan(Tuple(F("decided_at"), F("id")), after))
    rows = list(decided.order_by("-decided_at", "-id")[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        # Every request decided through the console has decided_at; one without ends paging.
        if last.decided_at is not None:
            next_cursor = _cursor_encode(
                {"k": "decided", "d": last.decided_at.isoformat(), "i": last.pk}
            )
    return ApprovalPage(rows=_decorated_rows(rows, full=full), next_cursor=next_cursor)


def approvals_history(
    *, user: Any, filters: QueueFilters, limit: int = 100
) -> list[ApprovalRequest]:
    """The first page of decided requests (see approvals_history_page)."""
    return approvals_history_page(user=user, filters=filters, limit=limit).rows


@dataclass(frozen=True)
class FacetCounts:
    agents: list[tuple[str, int]]
    tools: list[tuple[str, int]]
    impacts: list[tuple[str, int]]
    teams: list[tuple[str, int]]
    mine: int
    total: int
    # Counted over only the latest `window` decisions (history; None: every request counted).
    window: int | None = None


# History counts cover at most this many of the latest decisions: exact counts over millions
# of decided requests cost a scan of them all on every page view.
HISTORY_COUNT_WINDOW = 10_000


def approvals_facet_counts(*, user: Any, filters: QueueFilters, pending: bool) -> FacetCounts:
    """How many requests each filter value would show, within the current search.

    One grouped query (served by the approval_pending_facets index for the queue) and the names
    of the agents and teams it found: the number of queries does not grow with the data.
    """
    visible = approvals_visible_to(user=user)
    scope = (
        visible.filter(status=Status.PENDING) if pending else visible.exclude(status=Status.PENDING)
    )
    scope = _searched(scope, filters.q)
    window = None
    counted = scope
    if not pending:
        window = HISTORY_COUNT_WINDOW
        latest = scope.order_by("-decided_at", "-id").values("id")[:window]
        counted = ApprovalRequest.objects.filter(id__in=latest)
    # In the index's column order, and COUNT(*) rather than of a column outside it: PostgreSQL
    # then streams an index-only scan into the groups, with no hash table and no sort.
    groups = list(
        counted.values_list("team_id", "agent_id", "tool", "impact")
        .annotate(requests=Count("*"))
        .order_by("team_id", "agent_id", "tool", "impact")
    )
    team_ids = {group[0] for group in groups}
    agent_ids = {group[1] for group in groups}
    agent_names = dict(Agent.objects.filter(id__in=agent_ids).order_by().values_list("id", "name"))
    team_names = dict(Team.objects.filter(id__in=team_ids).order_by().values_list("id", "name"))
    agents: Counter[str] = Counter()
    tools: Counter[str] = Counter()
    impacts: Counter[str] = Counter()
    teams: Counter[str] = Counter()
    for team_id, agent_id, tool, impact, requests in groups:
        agents[agent_names[agent_id]] += requests
        tools[tool] += requests
        impacts[impact] += requests
        teams[team_names[team_id] if team_id is not None else "(unrouted)"] += requests
    mine = scope.filter(claim__reviewer=user, claim__expires_at__gt=timezone.now()).count()
    total = sum(agents.values())
    return FacetCounts(
        agents=sorted(agents.items()),
        tools=sorted(tools.items()),
        impacts=[(impact, impacts.get(impact, 0)) for impact in Impact.values],
        teams=sorted(teams.items()),
        mine=mine,
        total=total,
        window=window if window is not None and total >= window else None,
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
    # The run's requests routed to teams the reader may not see: counted, never shown.
    approvals_elsewhere: int = 0


def run_timeline_for_reviewer(
    *, approval: ApprovalRequest, user: Any, limit: int = 200
) -> RunTimeline | None:
    """The run around an approval request, as `user` may see it: the latest `limit` trace events
    up to the request and the few after it, interleaved with the run's requests by server time.

    The run's other requests go through the access rule like any list: one routed to a team the
    reader is not in shows neither its tool, its status nor a link (the link would answer 404
    anyway); the timeline only says how many there are.
    """
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
    visible = approvals_visible_to(user=user).filter(run=run)
    entries += [
        TimelineEntry(at=other.created_at, approval=other)
        for other in visible.order_by("created_at")[:limit]
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
    )
