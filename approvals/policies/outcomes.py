"""What a policy rule's automatic approvals did when they ran: the rule's outcome record, on its
admin page and in the rule list, so a rule that keeps approving failures is seen where it is
edited. (The insight dashboard shows the same per window: approvals.insight.outcomes.)

An automatic approval is one the rule made on its own, with no person (APPROVED_BY_RULE); a
request the rule held and a person approved is the person's, not the rule's.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from approvals.models import APPROVED_BY_RULE, ApprovalRequest, OutcomeStatus, OutcomeTally
from approvals.policies.models import PolicyRule

# The record's periods: (words, days back; None: all time).
RECORD_PERIODS: tuple[tuple[str, int | None], ...] = (
    ("Last 7 days", 7),
    ("Last 30 days", 30),
    ("All time", None),
)
# The rule list's column looks this far back.
LIST_DAYS = 30


@dataclass(frozen=True)
class RuleOutcomeRecord:
    periods: list[tuple[str, OutcomeTally]]
    # The latest automatic approvals that failed, newest first, with their outcome.
    latest_failures: list[ApprovalRequest]


def _approved_by(rule_id: int | OuterRef) -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(APPROVED_BY_RULE, policy_evaluation__rule_id=rule_id)


def policy_rule_outcome_record(
    *, rule: PolicyRule, now: datetime | None = None, failures: int = 5
) -> RuleOutcomeRecord:
    """The rule's automatic approvals in each period and what they did: two queries."""
    now = now or timezone.now()
    approvals = _approved_by(rule.pk)
    counts = {
        f"period_{index}": Count(
            "pk", filter=Q() if days is None else Q(decided_at__gte=now - timedelta(days=days))
        )
        for index, (_, days) in enumerate(RECORD_PERIODS)
    }
    tallies = [OutcomeTally() for _ in RECORD_PERIODS]
    rows: Any = approvals.order_by().values("outcome__status").annotate(**counts)
    for row in rows:
        for index, tally in enumerate(tallies):
            tally.add(row["outcome__status"], row[f"period_{index}"])
    latest = list(
        approvals.filter(outcome__status=OutcomeStatus.FAILED)
        .select_related("agent", "outcome")
        .order_by("-decided_at", "-id")[:failures]
    )
    return RuleOutcomeRecord(
        periods=[(words, tally) for (words, _), tally in zip(RECORD_PERIODS, tallies, strict=True)],
        latest_failures=latest,
    )


def policy_rules_with_failures(
    rules: QuerySet[PolicyRule], *, since: datetime
) -> QuerySet[PolicyRule]:
    """The rules, each with `auto_approved` (its automatic approvals decided since `since`) and
    `auto_failed` (how many of them failed): two subqueries of the one list query, so the
    rule list costs the same whatever the number of rules or approvals."""

    def count(condition: Q) -> Coalesce:
        counted = (
            _approved_by(OuterRef("pk"))
            .filter(condition, decided_at__gte=since)
            .order_by()
            .values("policy_evaluation__rule_id")
            .annotate(total=Count("pk"))
            .values("total")
        )
        return Coalesce(Subquery(counted[:1], output_field=IntegerField()), 0)

    return rules.annotate(
        auto_approved=count(Q()), auto_failed=count(Q(outcome__status=OutcomeStatus.FAILED))
    )
