"""What happened after approval, for the dashboard and the metrics endpoint.

Who approved is either a person (the decision names a reviewer) or the policy (it names none: a
rule approved it). Rates are over the approvals whose
outcome is known (approvals.models.OutcomeTally): one nobody reported on counts against the
success rate, never for it. Every function here is one grouped query, whatever the row count.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from approvals.insight.counters import decided_by
from approvals.insight.trends import _week_start
from approvals.models import (
    APPROVED_BY_RULE,
    ApprovalRequest,
    OutcomeStatus,
    OutcomeTally,
    Status,
)

PERSON = "person"
POLICY = "policy"
APPROVED_BY_WORDS = {PERSON: "a person", POLICY: "the policy"}
# Rows of the dashboard's table: the pairs with the most failures first.
OUTCOME_RATE_ROWS = 40


@dataclass(frozen=True)
class OutcomeRates:
    agent: str
    tool: str
    approved_by: str  # PERSON or POLICY
    tally: OutcomeTally

    @property
    def approved_by_words(self) -> str:
        return APPROVED_BY_WORDS[self.approved_by]


def outcome_rates(
    *, since: datetime, until: datetime, limit: int = OUTCOME_RATE_ROWS
) -> list[OutcomeRates]:
    """Approvals decided in the window per agent, tool and who approved, with what they did."""
    rows = (
        ApprovalRequest.objects.filter(
            status=Status.APPROVED, decided_at__gte=since, decided_at__lt=until
        )
        .order_by()
        .values("agent__name", "tool", "outcome__status")
        .annotate(
            total=Count("pk"), by_person=Count("pk", filter=Q(decision__reviewer__isnull=False))
        )
    )
    tallies: dict[tuple[str, str, str], OutcomeTally] = defaultdict(OutcomeTally)
    for row in rows:
        key = (row["agent__name"], row["tool"])
        for who, count in ((PERSON, row["by_person"]), (POLICY, row["total"] - row["by_person"])):
            if count:
                tallies[(*key, who)].add(row["outcome__status"], count)
    rates = [OutcomeRates(agent, tool, who, tally) for (agent, tool, who), tally in tallies.items()]
    rates.sort(key=lambda r: (-r.tally.failed, -r.tally.approved, r.agent, r.tool, r.approved_by))
    return rates[:limit]


@dataclass(frozen=True)
class FailuresByWeek:
    """ "Approved, then failed" per week (of the decision), by who approved."""

    weeks: list[str]
    # approved_by -> week -> tally of that week's approvals
    tallies: dict[str, dict[str, OutcomeTally]]

    def failed(self, approved_by: str) -> list[float | None]:
        by_week = self.tallies.get(approved_by, {})
        return [float(by_week[week].failed) if week in by_week else 0.0 for week in self.weeks]

    def rows(self) -> list[tuple[str, OutcomeTally, OutcomeTally]]:
        """(week, a person's approvals, the policy's approvals) for the table under the chart."""
        return [
            (
                week,
                self.tallies.get(PERSON, {}).get(week, OutcomeTally()),
                self.tallies.get(POLICY, {}).get(week, OutcomeTally()),
            )
            for week in self.weeks
        ]


def failures_by_week(*, since: datetime, until: datetime) -> FailuresByWeek:
    rows = (
        ApprovalRequest.objects.filter(
            status=Status.APPROVED, decided_at__gte=since, decided_at__lt=until
        )
        .values_list("decided_at", "decision__reviewer_id", "outcome__status")
        .iterator(chunk_size=2000)
    )
    tallies: dict[str, dict[str, OutcomeTally]] = {PERSON: {}, POLICY: {}}
    for decided_at, reviewer_id, status in rows:
        if decided_at is None:
            continue  # not possible for an approved request; keeps the types honest
        week = _week_start(decided_at).date().isoformat()
        who = PERSON if reviewer_id is not None else POLICY
        tallies[who].setdefault(week, OutcomeTally()).add(status)
    weeks = sorted(
        {week for by_week in tallies.values() for week in by_week}
        | {_week_start(until - timedelta(seconds=1)).date().isoformat()}
    )
    return FailuresByWeek(weeks=weeks, tallies=tallies)


@dataclass(frozen=True)
class RuleOutcomes:
    """A rule's automatic approvals in the window and what they did. `rule_id` is None when the
    rule was deleted since (its name at the time is kept)."""

    rule_id: int | None
    rule: str
    tally: OutcomeTally


def outcomes_by_rule(*, since: datetime, until: datetime) -> list[RuleOutcomes]:
    """Per policy rule, its automatic approvals decided in the window, most failures first.
    Grouped by the rule's id (a renamed rule stays one row), shown under the name it had."""
    in_window = Q(decided_at__gte=since, decided_at__lt=until)
    rows = (
        ApprovalRequest.objects.filter(APPROVED_BY_RULE, in_window)
        .order_by()
        .values("policy_evaluation__rule_id", "policy_evaluation__rule_name", "outcome__status")
        .annotate(total=Count("pk"))
    )
    groups: dict[tuple[int | None, str], tuple[str, OutcomeTally]] = {}
    for row in sorted(rows, key=lambda row: row["policy_evaluation__rule_name"] or ""):
        rule_id, name = row["policy_evaluation__rule_id"], row["policy_evaluation__rule_name"]
        key = (rule_id, "") if rule_id is not None else (None, name)
        groups.setdefault(key, (name, OutcomeTally()))[1].add(row["outcome__status"], row["total"])
    records = [RuleOutcomes(key[0], shown, tally) for key, (shown, tally) in groups.items()]
    records.sort(key=lambda r: (-r.tally.failed, -r.tally.approved, r.rule))
    return records


# --- Metrics (all time, aggregated in SQL) ---------------------------------------------------


@dataclass(frozen=True)
class OutcomeCount:
    agent: str
    tool: str
    status: str
    decided_by: str
    count: int


def metrics_outcome_counts() -> list[OutcomeCount]:
    """Outcomes by agent, tool, status and how the request was decided (human, policy, deadline…).

    Every status but `not_reported` is final: a reported outcome is never replaced, so these
    only ever grow. `not_reported` is the console's mark, replaced when a late report arrives:
    it is not counted here (see metrics_not_reported).
    """
    return _outcome_counts(~Q(outcome__status=OutcomeStatus.NOT_REPORTED))


def metrics_not_reported() -> list[OutcomeCount]:
    """Approvals marked `not_reported` now: a gauge, since a late report takes one away."""
    return _outcome_counts(Q(outcome__status=OutcomeStatus.NOT_REPORTED))


def _outcome_counts(condition: Q) -> list[OutcomeCount]:
    rows = (
        ApprovalRequest.objects.filter(condition, outcome__isnull=False)
        .order_by()
        .values("agent__name", "tool", "status", "outcome__status")
        .annotate(
            total=Count("pk"), by_reviewer=Count("pk", filter=Q(decision__reviewer__isnull=False))
        )
    )
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for row in rows:
        for reviewer_decided, count in (
            (True, row["by_reviewer"]),
            (False, row["total"] - row["by_reviewer"]),
        ):
            if count:
                how = decided_by(status=row["status"], reviewer_decided=reviewer_decided)
                key = (row["agent__name"], row["tool"], row["outcome__status"], how)
                counts[key] += count
    return [OutcomeCount(*key, count) for key, count in sorted(counts.items())]
