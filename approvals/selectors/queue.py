"""The queue and the history: filtered, searched, keyset-paged lists of requests a reviewer may
see, and their facet counts."""

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    F,
    Prefetch,
    Q,
    QuerySet,
    TextField,
    prefetch_related_objects,
)
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.functions import Cast
from django.utils import timezone

from agents.models import Agent
from approvals.access import approvals_visible_to
from approvals.models import (
    IMPACT_RANK,
    ApprovalClaim,
    ApprovalRequest,
    ApprovalVote,
    Decision,
    Impact,
    ReviewerPresence,
    Status,
    Team,
)

# What a pushed queue fragment shows besides the row: votes, viewers, and the history list
# (each event's actor), fetched up front rather than one query per event while rendering.
from approvals.selectors.detail import approvals_decorate


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
            "outcome",
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


def approvals_pending_total(*, user: Any, filters: QueueFilters, counts: FacetCounts) -> int:
    """How many pending requests the user may decide match the filters, on every page, not one.

    The facet counts already hold it when only the search is set (they count within it); other
    filters cost one count query.
    """
    if not any([filters.agent, filters.tool, filters.impact, filters.team, filters.mine]):
        return counts.total
    pending = approvals_visible_to(user=user).filter(status=Status.PENDING)
    # The queue's own filter rules, so the total counts exactly what the rows would show.
    return _filtered(pending, filters, user).count()
