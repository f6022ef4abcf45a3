"""Backtest: what would one rule have done to the last N decided requests?

The rule is evaluated on its own, as if it were active, against each request as it was submitted
(running totals are taken as they stood when the request was created). Where the rule would
have approved something no reviewer approved, or denied something a reviewer approved, that is
a disagreement worth reading before switching the rule on.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from agents.models import AgentGroup
from approvals.models import ApprovalRequest, Status
from approvals.policies.engine import RuleError, Snapshot, rule_explain_match
from approvals.policies.evaluation import approved_totals_for, labels_of, rule_from_model
from approvals.policies.models import Outcome, PolicyRule
from approvals.reasons import Reason, reason_join

NO_MATCH = "no match"
ERROR = "error"


@dataclass(frozen=True)
class BacktestRow:
    approval: ApprovalRequest
    would: str
    reason: Reason
    disagrees: bool


@dataclass
class BacktestResult:
    rule: PolicyRule
    examined: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    disagreements: list[BacktestRow] = field(default_factory=list)
    rows: list[BacktestRow] = field(default_factory=list)

    @property
    def would_approve(self) -> int:
        return self.counts[Outcome.APPROVE]

    @property
    def would_deny(self) -> int:
        return self.counts[Outcome.DENY]

    @property
    def would_hold(self) -> int:
        return self.counts[Outcome.HOLD]

    @property
    def no_match(self) -> int:
        return self.counts[NO_MATCH]

    @property
    def errors(self) -> int:
        return self.counts[ERROR]


def _disagrees(would: str, actual: str) -> bool:
    if would == Outcome.APPROVE:
        # Nobody approved it (denied, or left to expire): approving at once would differ.
        return actual in {Status.DENIED, Status.EXPIRED}
    if would == Outcome.DENY:
        return actual == Status.APPROVED
    return False


def policy_rule_backtest(*, rule: PolicyRule, limit: int = 200) -> BacktestResult:
    engine_rule = replace(rule_from_model(rule), shadow=False)
    decided = list(
        ApprovalRequest.objects.exclude(status=Status.PENDING)
        .exclude(decided_at__isnull=True)
        .select_related("agent")
        .order_by("-decided_at", "-id")[: max(1, min(limit, 5000))]
    )
    groups: dict[int, set[int]] = defaultdict(set)
    for agent_id, group_id in AgentGroup.agents.through.objects.filter(
        agent_id__in={approval.agent_id for approval in decided}
    ).values_list("agent_id", "agentgroup_id"):
        groups[agent_id].add(group_id)

    result = BacktestResult(rule=rule, examined=len(decided))
    for approval in decided:
        snapshot = Snapshot(
            agent_id=approval.agent_id,
            agent_group_ids=frozenset(groups[approval.agent_id]),
            tool=approval.tool,
            arguments=approval.arguments,
            impact=approval.impact,
            confidence=approval.confidence,
            labels=labels_of(approval),
            at=approval.created_at,
        )
        try:
            why = rule_explain_match(engine_rule, snapshot, approved_totals_for(approval.agent_id))
        except RuleError as error:
            # Live, this request would have been held.
            would = ERROR
            reason = Reason.of("could not be evaluated (", error.reason, "): would hold")
        else:
            if why is None:
                would, reason = NO_MATCH, Reason()
            else:
                would, reason = engine_rule.outcome, reason_join(why, "; ")
        row = BacktestRow(
            approval=approval,
            would=would,
            reason=reason,
            disagrees=_disagrees(would, approval.status),
        )
        result.counts[would] += 1
        result.rows.append(row)
        if row.disagrees:
            result.disagreements.append(row)
    return result
