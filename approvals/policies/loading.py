"""Loading the policy: rules, guardrails and budgets as plain values, cached per process and
re-read when an edit changes its version."""

import threading
from dataclasses import dataclass
from functools import cache

from django.db import connection

from approvals.policies.engine import (
    Condition,
    Rule,
)
from approvals.policies.models import (
    Budget,
    CircuitBreaker,
    PolicyCondition,
    PolicyRule,
    RuleState,
    Throttle,
)
from console.hot_statements import statements_rows


def rule_from_model(rule: PolicyRule) -> Rule:
    labels = rule.labels if rule.labels is not None else []
    labels_ok = isinstance(labels, list) and all(isinstance(label, str) for label in labels)
    return Rule(
        id=rule.pk,
        name=rule.name,
        position=rule.position,
        outcome=rule.outcome,
        shadow=rule.state == RuleState.SHADOW,
        agent_id=rule.agent_id,
        agent_group_id=rule.agent_group_id,
        tool_glob=rule.tool_glob,
        impact_at_least=rule.impact_at_least,
        confidence_below=rule.confidence_below,
        labels=tuple(labels) if labels_ok else (),
        broken="" if labels_ok else f"the rule's labels {rule.labels!r} are not a list of text",
        active_from=rule.active_from,
        active_until=rule.active_until,
        conditions=tuple(
            Condition(path=c.path, operator=c.operator, value=c.value)
            for c in rule.conditions.all()
        ),
        total_path=rule.total_path,
        total_window_seconds=rule.total_window_seconds,
        total_above=rule.total_above,
        reason=rule.reason,
        team_id=rule.team_id,
        team_name=rule.team.name if rule.team else "",
        required_approvals=max(1, rule.required_approvals),
        time_to_decide_seconds=rule.time_to_decide_seconds,
        on_timeout=rule.on_timeout,
        escalation_chain_id=rule.escalation_chain_id,
    )


def _rules_from_database() -> list[Rule]:
    rows = (
        PolicyRule.objects.filter(state__in=[RuleState.ACTIVE, RuleState.SHADOW])
        .select_related("team")
        .prefetch_related("conditions")
        .order_by("position", "id")
    )
    return [rule_from_model(row) for row in rows]


_VERSIONED_TABLES = (PolicyRule, PolicyCondition, Budget, Throttle, CircuitBreaker)


@cache  # the same text for the process's one database, and written on every batch
def policy_version_columns() -> str:
    """The policy's version as SQL select-list items (see _policy_version), for a statement
    that reads it along with something else (the agents' lock, for a lone request)."""
    parts = []
    for model in _VERSIONED_TABLES:
        table = connection.ops.quote_name(model._meta.db_table)
        parts += [
            f"(SELECT COUNT(*) FROM {table})",  # noqa: S608 (table names from our own models)
            f"(SELECT MAX(updated_at) FROM {table})",  # noqa: S608 (as above)
        ]
    return ", ".join(parts)


def _policy_version() -> tuple[object, ...]:
    """Changes whenever a rule, condition, budget, throttle or breaker is added, edited or deleted.

    An insert or edit moves a max(updated_at); a delete changes a count. One cheap query per
    batch of requests instead of loading the whole policy (tens of ms with 100 rules). Scalar
    subqueries, not a join: the join's COUNT(DISTINCT) cost several times more on PostgreSQL.
    """
    # A fixed statement (console.hot_statements): prepared once per connection, and a batch's
    # transaction's `BEGIN` goes with it, its first statement.
    ((row,),) = statements_rows([(f"SELECT {policy_version_columns()}", [])])
    # Renaming a team is not a policy change: until a rule changes, reasons keep the old name.
    return tuple(row)


@dataclass(frozen=True)
class Policy:
    """What a verdict reads that only people change: rules, and the enabled guardrails.

    Shared between threads and requests: nothing here is written to. Budgets and throttles are
    model instances, read only.
    """

    rules: list[Rule]
    budgets: list[Budget]
    throttles: list[Throttle]
    breakers_enabled: bool

    @property
    def interdependent(self) -> bool:
        """Whether deciding one request can change the verdict on the agent's next one.

        Throttles count auto-approvals, rules with running totals sum approved arguments, and a
        circuit breaker halts an agent after denials: with any of them enabled, a batch must
        decide an agent's requests one after another, each seeing the rows the previous one
        wrote. Without them, a verdict depends only on the request and on state no new request
        changes.
        """
        return (
            bool(self.throttles)
            or self.breakers_enabled
            or any(rule.total_path for rule in self.rules)
        )


def _policy_from_database() -> Policy:
    return Policy(
        rules=_rules_from_database(),
        budgets=list(Budget.objects.filter(enabled=True)),
        throttles=list(Throttle.objects.filter(enabled=True)),
        breakers_enabled=CircuitBreaker.objects.filter(enabled=True).exists(),
    )


_cache_lock = threading.Lock()
_cached: tuple[tuple[object, ...], Policy] | None = None


def policy_load(*, version: tuple[object, ...] | None = None) -> Policy:
    """The policy in force; cached per process, checked against the version on every call.

    Every process checks the version for every batch, so an edit applies to the next request
    everywhere. Edits must go through save() (the admin does): QuerySet.update() skips
    auto_now and would not be seen until the next saved change.

    `version`: read by the caller just now (policy_version_columns), in a statement of its own.
    """
    global _cached
    if version is None:
        version = _policy_version()
    cached = _cached
    if cached is not None and cached[0] == version:
        return cached[1]
    policy = _policy_from_database()
    with _cache_lock:
        _cached = (version, policy)
    return policy


def rules_load() -> list[Rule]:
    """The active and shadow rules, in the order they are tried (see policy_load)."""
    return policy_load().rules
