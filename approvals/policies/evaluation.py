"""From a submission to a verdict: load the rules and the guardrail state, run the engine.

`policy_decide` must run inside the transaction that creates the request. It locks the agent's
row first, so two requests from one agent are decided one after the other: a throttle or a
running total cannot be slipped past by sending requests in parallel (on SQLite, IMMEDIATE
transactions serialize writers anyway).
"""

import fnmatch
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from agents.models import Agent, AgentGroup, AgentHalt, Run, TraceEvent
from approvals.models import IMPACT_RANK, ApprovalRequest, Status
from approvals.policies.engine import (
    Evaluation,
    Rule,
    ShadowMatch,
    Snapshot,
    TotalsLookup,
    policy_evaluate,
)
from approvals.policies.loading import (  # noqa: F401  (importable from here too)
    Policy,
    policy_load,
    policy_version_columns,
    rule_from_model,
    rules_load,
)
from approvals.policies.locks import agents_lock_and_halts
from approvals.policies.models import (
    Budget,
    BudgetAction,
    BudgetScope,
    Outcome,
    Throttle,
)
from approvals.reasons import AgentValue, Reason, reason_join
from console.hot_statements import RidesAlong

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """What happens to a new request, and why, in words."""

    outcome: str
    # The console's words with the agent's values kept apart (approvals.reasons).
    why: Reason
    rule: Rule | None = None
    # Which part of the policy decided: a rule, the default, or a guardrail.
    decided_by: str = "default"
    shadow_matches: tuple[ShadowMatch, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """The plain text: for API answers and the audit trail, agent values as quoted literals."""
        return str(self.why)

    @property
    def team_id(self) -> int | None:
        """The team the request belongs to: the deciding rule's, whatever the outcome. Held, its
        reviewers decide it; approved or denied at once, they see what the rule decided in their
        place (history, run pages, exports), and nobody is asked anything. The same rule either
        way, so what a throttle or a budget holds of a rule's approvals goes to the team that
        sees the rest. No rule (a halt, a closed run, the default hold): no team, staff's alone
        (approvals/access.py)."""
        return self.rule.team_id if self.rule else None

    @property
    def required_approvals(self) -> int:
        return self.rule.required_approvals if self.rule and self.outcome == Outcome.HOLD else 1

    @property
    def escalation_chain_id(self) -> int | None:
        """None: the request follows the default chain (settings.ESCALATION_DEFAULT_CHAIN)."""
        if self.rule and self.outcome == Outcome.HOLD:
            return self.rule.escalation_chain_id
        return None

    @property
    def time_to_decide_seconds(self) -> int | None:
        if self.rule and self.outcome == Outcome.HOLD:
            return self.rule.time_to_decide_seconds
        return None


def labels_of(source: Any) -> Any:
    """Labels adapter: the request's `labels` field, or `context["labels"]` when it has none.

    Agents sent labels in context before the native API gave requests a labels field; both
    are the agent's own claim either way. Kept here, in one place.
    """
    labels = getattr(source, "labels", None)
    if labels:
        return labels
    context = getattr(source, "context", None) or {}
    return context.get("labels") if isinstance(context, dict) else None


def _numbers_at(path: str, arguments: Any) -> float:
    value: Any = arguments
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0


def approved_totals_for(agent_id: int) -> TotalsLookup:
    """Sum one argument over the agent's approved requests in a window before `at`.

    Uses the arguments actually approved: when a reviewer approved with changes, those count.
    """

    def lookup(tool_glob: str, path: str, window_seconds: int, at: datetime) -> float:
        rows = ApprovalRequest.objects.filter(
            agent_id=agent_id,
            status=Status.APPROVED,
            decided_at__gte=at - timedelta(seconds=window_seconds),
            decided_at__lt=at,
        ).values_list("tool", "arguments", "decision__approved_arguments")
        total = 0.0
        for tool, arguments, approved_arguments in rows:
            if tool_glob and not fnmatch.fnmatchcase(tool, tool_glob):
                continue
            used = approved_arguments if approved_arguments is not None else arguments
            total += _numbers_at(path, used)
        return total

    return lookup


def halt_reason(halt: AgentHalt) -> Reason:
    # The halt's reason is a reviewer's or the circuit breaker's words, never the agent's.
    who = halt.halted_by.get_username() if halt.halted_by else "the console"
    return Reason.of(
        f"Denied: the agent was halted by {who} at {halt.halted_at:%Y-%m-%d %H:%M:%S} UTC "
        f"({halt.reason}). New requests are denied until someone resumes it."
    )


def _auto_approvals(
    *, agent_id: int, throttle: Throttle, now: datetime, tool: str, impact: str
) -> int | None:
    """Auto-approvals counted by a throttle, or None if the throttle does not apply here."""
    if throttle.tool_glob and not fnmatch.fnmatchcase(tool, throttle.tool_glob):
        return None
    minimum = IMPACT_RANK.get(throttle.impact_at_least)  # type: ignore[call-overload]
    if minimum is not None and IMPACT_RANK.get(impact, -1) < minimum:  # type: ignore[call-overload]
        return None
    rows = ApprovalRequest.objects.filter(
        agent_id=agent_id,
        status=Status.APPROVED,
        decision__reviewer__isnull=True,
        decided_at__gte=now - timedelta(seconds=throttle.window_seconds),
    ).values_list("tool", "impact")
    count = 0
    for row_tool, row_impact in rows:
        if throttle.tool_glob and not fnmatch.fnmatchcase(row_tool, throttle.tool_glob):
            continue
        if minimum is not None and IMPACT_RANK.get(row_impact, -1) < minimum:  # type: ignore[call-overload]
            continue
        count += 1
    return count


def _throttle_hit(
    *, throttles: Iterable[Throttle], agent_id: int, now: datetime, tool: str, impact: str
) -> Reason | None:
    for throttle in throttles:
        if throttle.agent_id is not None and throttle.agent_id != agent_id:
            continue
        count = _auto_approvals(
            agent_id=agent_id, throttle=throttle, now=now, tool=tool, impact=impact
        )
        if count is not None and count >= throttle.max_auto_approvals:
            return Reason.of(
                f"Throttle “{throttle.name}”: {count} auto-approvals within "
                f"{throttle.window_seconds}s already (at most {throttle.max_auto_approvals}); "
                f"held for review."
            )
    return None


@dataclass(frozen=True)
class PolicyQuestion:
    """One new request to decide: who asks, what for, and in which run (locked by the caller)."""

    agent: Agent
    submission: Any
    run: Run | None = None


@dataclass
class _Guardrails:
    """Budgets and throttles, loaded once per decision batch."""

    budgets: list[Budget]
    throttles: list[Throttle]
    cost_today: dict[int, Decimal] = field(default_factory=dict)


def policy_decide(
    *, agent: Agent, submission: Any, now: datetime, run: Run | None = None
) -> Verdict:
    """Decide a new request. Call inside the creating transaction. Never raises: fails closed."""
    return policy_decide_many(
        [PolicyQuestion(agent=agent, submission=submission, run=run)], now=now
    )[0]


def policy_decide_many(
    questions: list[PolicyQuestion],
    *,
    now: datetime,
    exclusive: bool = True,
    policy: Policy | None = None,
    along_with: Sequence[RidesAlong] = (),
) -> list[Verdict]:
    """Decide new requests, in order. Call inside the creating transaction. Never raises.

    A few queries for the whole list, not per request. Verdicts see the database as it was
    before the call: when decisions are interdependent (policy_decisions_interdependent), give
    one agent's requests one per call, writing each before deciding the next.

    exclusive=False only when decisions are not interdependent: creations of one agent then
    run side by side instead of one transaction after another.

    `policy`: the one the caller chose the lock mode by (policy_load()); loaded here if None.
    `along_with`: the caller's statements that need nothing before them, sent with the lock's.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("policy_decide must run inside the transaction creating the request")
    agent_ids = sorted({question.agent.pk for question in questions})
    version, halts = agents_lock_and_halts(
        agent_ids, exclusive=exclusive, with_policy_version=policy is None, along_with=along_with
    )
    # Read the clock after the lock: whoever held it before decided later than our caller's
    # `now`, and windows ending at an earlier instant would not see those decisions.
    now = max(now, timezone.now())
    policy, groups = _policy_with_groups(policy, agent_ids, version)
    guardrails: _Guardrails | None = None

    verdicts = []
    for question in questions:
        halt = halts.get(question.agent.pk)
        if halt is not None:
            verdicts.append(Verdict(outcome=Outcome.DENY, why=halt_reason(halt), decided_by="halt"))
            continue
        verdict, evaluated = _rules_verdict(question, policy=policy, groups=groups, now=now)
        if not evaluated:
            verdicts.append(verdict)  # held: guardrails could only make it stricter
            continue
        try:
            if guardrails is None:
                assert policy is not None  # loaded, or the verdict above was an error
                guardrails = _Guardrails(budgets=policy.budgets, throttles=policy.throttles)
            verdict = _apply_guardrails(
                verdict,
                guardrails,
                agent=question.agent,
                submission=question.submission,
                now=now,
                run=question.run,
            )
        except Exception:
            logger.exception("guardrail check failed; holding the request")
            verdict = _guardrails_unchecked(verdict)
        verdicts.append(verdict)
    return verdicts


def _guardrails_unchecked(verdict: Verdict) -> Verdict:
    """Fail closed when the guardrails cannot be checked: held, or denied if the rules denied."""
    return Verdict(
        outcome=Outcome.HOLD if verdict.outcome != Outcome.DENY else Outcome.DENY,
        why=Reason.of("The guardrails could not be checked: held for review. (", verdict.why, ")"),
        rule=verdict.rule,
        decided_by="error",
        shadow_matches=verdict.shadow_matches,
    )


def _policy_with_groups(
    policy: Policy | None, agent_ids: list[int], version: tuple[object, ...] | None
) -> tuple[Policy | None, dict[int, frozenset[int]]]:
    """The policy (loaded if not given, at `version` if read) and each agent's groups;
    (None, {}) if loading fails, which holds every request."""
    try:
        if policy is None:
            policy = policy_load(version=version)
        groups: dict[int, frozenset[int]] = {}
        if any(rule.agent_group_id is not None for rule in policy.rules):
            memberships = AgentGroup.agents.through.objects.filter(agent_id__in=agent_ids)
            for agent_id, group_id in memberships.values_list("agent_id", "agentgroup_id"):
                groups[agent_id] = groups.get(agent_id, frozenset()) | {group_id}
        return policy, groups
    except Exception:
        logger.exception("loading the policy failed; holding the requests")
        return None, {}


def _rules_verdict(
    question: PolicyQuestion,
    *,
    policy: Policy | None,
    groups: dict[int, frozenset[int]],
    now: datetime,
) -> tuple[Verdict, bool]:
    """What the rules say, before guardrails, and whether they could be evaluated. A policy
    that cannot be evaluated never lets a request through: it is held."""
    agent, submission = question.agent, question.submission
    try:
        if policy is None:
            raise RuntimeError("the policy could not be loaded")
        snapshot = Snapshot(
            agent_id=agent.pk,
            agent_group_ids=groups.get(agent.pk, frozenset()),
            tool=submission.tool,
            arguments=submission.arguments,
            impact=submission.impact,
            confidence=submission.confidence,
            labels=labels_of(submission),
            at=now,
        )
        evaluation: Evaluation = policy_evaluate(
            policy.rules, snapshot, approved_totals_for(agent.pk)
        )
    except Exception:
        logger.exception("policy evaluation failed; holding the request")
        held = Verdict(
            outcome=Outcome.HOLD,
            why=Reason.of("The policy could not be evaluated: held for review, never approved."),
            decided_by="error",
        )
        return held, False
    decided_by = "default"
    if evaluation.rule is not None:
        decided_by = "error" if evaluation.errored else "rule"
    verdict = Verdict(
        outcome=evaluation.outcome,
        why=evaluation.why,
        rule=evaluation.rule,
        decided_by=decided_by,
        shadow_matches=evaluation.shadow_matches,
    )
    return verdict, True


def _apply_guardrails(
    verdict: Verdict,
    guardrails: _Guardrails,
    *,
    agent: Agent,
    submission: Any,
    now: datetime,
    run: Run | None,
) -> Verdict:
    """Budgets, then throttles. Guardrails only tighten: approve -> hold, anything -> deny."""
    budget = _budget_reached(guardrails, agent_id=agent.pk, run=run, now=now)
    if budget is not None:
        action, why = budget
        if action == BudgetAction.DENY and verdict.outcome != Outcome.DENY:
            return Verdict(
                outcome=Outcome.DENY,
                why=Reason.of(why, " Denied. (The policy said: ", verdict.why, ")"),
                rule=verdict.rule,
                decided_by="budget",
                shadow_matches=verdict.shadow_matches,
            )
        if action == BudgetAction.HOLD and verdict.outcome == Outcome.APPROVE:
            return Verdict(
                outcome=Outcome.HOLD,
                why=Reason.of(
                    why, " Held for review. (The policy would have approved it: ", verdict.why, ")"
                ),
                rule=verdict.rule,
                decided_by="budget",
                shadow_matches=verdict.shadow_matches,
            )
    if verdict.outcome == Outcome.APPROVE:
        throttled = _throttle_hit(
            throttles=guardrails.throttles,
            agent_id=agent.pk,
            now=now,
            tool=submission.tool,
            impact=submission.impact,
        )
        if throttled is not None:
            return Verdict(
                outcome=Outcome.HOLD,
                why=Reason.of(throttled, " (The policy would have approved it: ", verdict.why, ")"),
                rule=verdict.rule,
                decided_by="throttle",
                shadow_matches=verdict.shadow_matches,
            )
    return verdict


def _money(amount: Decimal) -> str:
    return f"{amount.normalize():f}"


def agent_cost_today(*, agent_id: int, now: datetime) -> Decimal:
    """What the agent's runs cost since midnight UTC, from their trace events."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    total = TraceEvent.objects.filter(run__agent_id=agent_id, recorded_at__gte=midnight).aggregate(
        total=Sum("cost")
    )["total"]
    return total or Decimal(0)


def _budget_reached(
    guardrails: _Guardrails, *, agent_id: int, run: Run | None, now: datetime
) -> tuple[str, Reason] | None:
    """(action, why) for the strictest budget reached, or None. Deny wins over hold."""
    hits: dict[str, list[Reason]] = {BudgetAction.DENY: [], BudgetAction.HOLD: []}
    for budget in guardrails.budgets:
        if budget.agent_id is not None and budget.agent_id != agent_id:
            continue
        if budget.scope == BudgetScope.RUN:
            if run is None:
                continue
            # The run row was locked by the caller: this total is current.
            # The run's name is the agent's.
            spent, what = run.total_cost, Reason.of("the run ", AgentValue(run.name), " has cost")
        else:
            if agent_id not in guardrails.cost_today:
                guardrails.cost_today[agent_id] = agent_cost_today(agent_id=agent_id, now=now)
            spent = guardrails.cost_today[agent_id]
            what = Reason.of("the agent's runs have cost today (UTC)")
        if spent >= budget.ceiling:
            hits[budget.action].append(
                Reason.of(
                    f"Budget “{budget.name}” reached: ",
                    what,
                    f" {_money(spent)}, the ceiling is {_money(budget.ceiling)}.",
                )
            )
    if run is not None and run.is_over_budget and run.budget is not None:
        hits[BudgetAction.HOLD].append(
            Reason.of(
                f"The run's own budget of {_money(run.budget)} is exceeded "
                f"(cost {_money(run.total_cost)})."
            )
        )
    for action in (BudgetAction.DENY, BudgetAction.HOLD):
        if hits[action]:
            return action, reason_join(hits[action], " ")
    return None
