"""The policy models, declared in approvals.models.policies with the app's other models (the
policy layer sits above the models it reads); importable from here as well."""

from approvals.models.policies import (
    Budget,
    BudgetAction,
    BudgetScope,
    CircuitBreaker,
    OnTimeout,
    Operator,
    Outcome,
    PolicyCondition,
    PolicyEvaluation,
    PolicyRule,
    RuleState,
    Throttle,
)

__all__ = [
    "Budget",
    "BudgetAction",
    "BudgetScope",
    "CircuitBreaker",
    "OnTimeout",
    "Operator",
    "Outcome",
    "PolicyCondition",
    "PolicyEvaluation",
    "PolicyRule",
    "RuleState",
    "Throttle",
]
