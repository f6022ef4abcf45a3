"""The queue and the history: filtered, searched, keyset-paged lists of requests a reviewer may
see, and their facet counts."""

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
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
    ApprovalRequest,
    Decision,
    Impact,
    Status,
    Team,
)

# What a pushed queue fragment shows besides the row: votes, viewers, and the history list
# (each event's actor), fetched up front rather than one query per event while rendering.
from approvals.selectors.detail import (
    PAYLOAD_FIELDS,
    approvals_decorate,
    review_state_prefetches,
)


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


def _for_rows(approvals: QuerySet[ApprovalRequest], *, full: bool) -> QuerySet[ApprovalRequest]:
    # Two joins only: every further table is one prefetch query (_queue_rows, _history_rows),
    # which PostgreSQL plans in no time, where a nine-table join took longer to plan than to run.
    approvals = approvals.select_related("agent", "team")
    # A page's rows show none of the payload (the reviewer API returns it: full).
    return approvals if full else approvals.defer(*PAYLOAD_FIELDS)


# What each list's rows show besides the request, one query per related table whatever the
# number of rows (fresh Prefetch objects each time: prefetching keeps state on them). Queue
# rows: who claimed, voted and is looking now (review_state_prefetches).
def _history_row_related() -> "list[str | Prefetch[Any]]":
    """History rows: who decided, and what the approved call did."""
    return [Prefetch("decision", queryset=Decision.objects.select_related("reviewer")), "outcome"]


def _api_row_related() -> "list[str | Prefetch[Any]]":
    """The reviewer API's rows, pending or decided: all of the above, the run and the policy."""
    return [*review_state_prefetches(), *_history_row_related(), "run", "policy_evaluation"]


def _queue_rows(approvals: list[ApprovalRequest], *, full: bool) -> list[ApprovalRequest]:
    prefetch_related_objects(
        approvals, *(_api_row_related() if full else review_state_prefetches())
    )
    return approvals_decorate(approvals)


def _history_rows(approvals: list[ApprovalRequest], *, full: bool) -> list[ApprovalRequest]:
    if not full:  # a history row shows no claim, vote or viewer: nothing to decorate
        prefetch_related_objects(approvals, *_history_row_related())
        return approvals
    prefetch_related_objects(approvals, *_api_row_related())
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

    full: rows as the reviewer API returns them (payload, decision, run, policy evaluation),
    rather than as the queue page shows them.
    """
    position = _QueuePosition.decode(cursor) if cursor else None
    cutoff = (
        position.cutoff
        if position
        else timezone.now() + timedelta(seconds=settings.APPROVAL_URGENT_SECONDS)
    )
    pending = _for_rows(
        _filtered(approvals_visible_to(user=user).filter(status=Status.PENDING), filters, user),
        full=full,
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
    return ApprovalPage(rows=_queue_rows(rows, full=full), next_cursor=next_cursor)


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
    full: bool = False,
) -> ApprovalPage:
    """Decided requests the user may see, newest decision first, in index order
    (approval_decided_order). Raises InvalidCursor for a foreign cursor.

    full: rows as the reviewer API returns them (payload, run, policy evaluation, claim, votes),
    rather than as the history page shows them.
    """
    decided = _for_rows(
        _filtered(approvals_visible_to(user=user).exclude(status=Status.PENDING), filters, user),
        full=full,
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
    return ApprovalPage(rows=_history_rows(rows, full=full), next_cursor=next_cursor)


def approvals_history(
    *, user: Any, filters: QueueFilters, limit: int = 100
) -> list[ApprovalRequest]:
    """The first page of decided requests (see approvals_history_page)."""
    return approvals_history_page(user=user, filters=filters, limit=limit).rows


# (team id or None, agent id, tool, impact, requests): one per combination, thousands a page.
_Group = tuple[int | None, int, str, str, int]


@dataclass(frozen=True)
class FacetGroups:
    """How many requests share each team, agent, tool and impact: what the facet counts add
    up, so any mix of those filters has its total without a query."""

    groups: list[_Group]
    agent_names: dict[int, str]
    team_names: dict[int, str]

    def total(self, filters: QueueFilters) -> int:
        """The requests the filters' agent, tool, impact and team (each when set) all take in:
        the same equalities the queue's own query makes (_filtered), on names as there."""
        agent_ids = {i for i, name in self.agent_names.items() if name == filters.agent}
        team_ids = {i for i, name in self.team_names.items() if name == filters.team}
        return sum(
            requests
            for team_id, agent_id, tool, impact, requests in self.groups
            if (not filters.agent or agent_id in agent_ids)
            and (not filters.tool or tool == filters.tool)
            and (not filters.impact or impact == filters.impact)
            and (not filters.team or team_id in team_ids)
        )


@dataclass(frozen=True)
class FacetCounts:
    agents: list[tuple[str, int]]
    tools: list[tuple[str, int]]
    impacts: list[tuple[str, int]]
    teams: list[tuple[str, int]]
    mine: int
    total: int
    groups: FacetGroups
    # Counted over only the latest `window` decisions (history; None: every request counted).
    window: int | None = None


# History counts cover at most this many of the latest decisions: exact counts over millions
# of decided requests cost a scan of them all on every page view.
HISTORY_COUNT_WINDOW = 10_000

_FACET_COLUMNS = ("team_id", "agent_id", "tool", "impact")


def _pending_groups(scope: QuerySet[ApprovalRequest]) -> list[_Group]:
    # In the index's column order, and COUNT(*) rather than of a column outside it: PostgreSQL
    # then streams an index-only scan of approval_pending_facets into the groups, with no hash
    # table and no sort.
    grouped = (
        scope.values_list(*_FACET_COLUMNS).annotate(requests=Count("*")).order_by(*_FACET_COLUMNS)
    )
    # Thousands of small rows at 100,000 pending: taken as the driver returns them, without the
    # ORM's work per row (a fifth of the counts' time there). Plain columns: nothing to convert.
    sql, params = grouped.query.sql_with_params()
    with connections[grouped.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _latest_decided_groups(scope: QuerySet[ApprovalRequest], window: int) -> list[_Group]:
    # The latest decisions' four columns, read in approval_decided_order and counted here: the
    # rows are next to each other on disk. Grouped in SQL as `id IN (the latest ids)` instead,
    # PostgreSQL looked each row up by key (or scanned the table): 60 ms at 1,000,000 decided
    # against about 10 ms for this.
    latest = scope.order_by("-decided_at", "-id").values_list(*_FACET_COLUMNS)[:window]
    return [(*columns, requests) for columns, requests in Counter(latest).items()]


def approvals_facet_counts(*, user: Any, filters: QueueFilters, pending: bool) -> FacetCounts:
    """How many requests each filter value would show, within the current search.

    One grouped query and the names of the agents and teams it found: the number of queries
    does not grow with the data.
    """
    visible = approvals_visible_to(user=user)
    scope = (
        visible.filter(status=Status.PENDING) if pending else visible.exclude(status=Status.PENDING)
    )
    scope = _searched(scope, filters.q)
    window = None if pending else HISTORY_COUNT_WINDOW
    grouped = _pending_groups(scope) if window is None else _latest_decided_groups(scope, window)
    team_ids = {group[0] for group in grouped if group[0] is not None}
    agent_ids = {group[1] for group in grouped}
    agent_names = dict(Agent.objects.filter(id__in=agent_ids).order_by().values_list("id", "name"))
    team_names = dict(Team.objects.filter(id__in=team_ids).order_by().values_list("id", "name"))
    # Added up by ids, a few increments per combination (there can be thousands); named after.
    by_team_agent: Counter[tuple[int | None, int]] = Counter()
    tools: Counter[str] = Counter()
    impacts: Counter[str] = Counter()
    for team_id, agent_id, tool, impact, requests in grouped:
        by_team_agent[team_id, agent_id] += requests
        tools[tool] += requests
        impacts[impact] += requests
    agents: Counter[str] = Counter()
    teams: Counter[str] = Counter()
    for (team_id, agent_id), requests in by_team_agent.items():
        agents[agent_names[agent_id]] += requests
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
        groups=FacetGroups(groups=grouped, agent_names=agent_names, team_names=team_names),
        window=window if window is not None and total >= window else None,
    )


def approvals_pending_total(*, user: Any, filters: QueueFilters, counts: FacetCounts) -> int:
    """How many pending requests the user may decide match the filters, on every page, not one.

    The facet counts (of the pending requests, within the search) already hold it: the groups
    the agent, tool, impact and team filters take in, added up. Only "claimed by me" costs a
    count query.
    """
    if not filters.mine:
        return counts.groups.total(filters)
    pending = approvals_visible_to(user=user).filter(status=Status.PENDING)
    # The queue's own filter rules, so the total counts exactly what the rows would show.
    return _filtered(pending, filters, user).count()
