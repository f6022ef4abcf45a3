"""Policy rules, their argument conditions, the guardrails, and the record of every evaluation.

Registered with the approvals app: approvals.models imports this module.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models

from agents.models import Agent, AgentGroup
from approvals.models.escalations import EscalationChain
from approvals.models.requests import ApprovalRequest, Impact, Team


class Outcome(models.TextChoices):
    APPROVE = "approve", "Approve at once"
    DENY = "deny", "Deny at once"
    HOLD = "hold", "Hold for review"


class RuleState(models.TextChoices):
    ACTIVE = "active", "Active: decides requests"
    SHADOW = "shadow", "Shadow: evaluated and recorded, without effect"
    DRAFT = "draft", "Draft: not evaluated (backtest it first)"


class OnTimeout(models.TextChoices):
    # Deliberately no "approve": a request nobody decided is never approved.
    DENY = "deny", "Deny (the request expires and the agent must not act)"


class Operator(models.TextChoices):
    EQ = "=", "="
    NE = "!=", "!="
    LT = "<", "<"
    LE = "<=", "<="
    GT = ">", ">"
    GE = ">=", ">="
    IN = "in", "in (value is a list)"
    CONTAINS = "contains", "contains"
    MATCHES = "matches", "matches regex (the whole value)"


class PolicyRule(models.Model):
    """One rule of the policy. Rules are tried by position; the first active match decides.

    Every match criterion left empty matches anything; the criteria that are set are ANDed.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(
        default=100, db_index=True, help_text="Lower positions are tried first."
    )
    state = models.CharField(max_length=10, choices=RuleState.choices, default=RuleState.DRAFT)

    # What the rule matches.
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    agent_group = models.ForeignKey(
        AgentGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tool_glob = models.CharField(
        max_length=200, blank=True, help_text='Shell-style pattern, e.g. "issue_*". Empty: any.'
    )
    impact_at_least = models.CharField(max_length=10, choices=Impact.choices, blank=True)
    confidence_below = models.FloatField(
        null=True,
        blank=True,
        help_text="Matches when the agent's confidence is below this. A request that states "
        "no confidence cannot be evaluated by this rule and is held.",
    )
    labels = models.JSONField(
        default=list, blank=True, help_text='Labels the request must all carry, e.g. ["pii"].'
    )
    active_from = models.TimeField(
        null=True, blank=True, help_text="Time of day (UTC) from which the rule applies."
    )
    active_until = models.TimeField(
        null=True,
        blank=True,
        help_text="Time of day (UTC) until which the rule applies; earlier than the start "
        "wraps past midnight.",
    )
    # Running total: the sum of one argument over this agent's approved requests of a matching
    # tool in a window, plus this call's value.
    total_path = models.CharField(
        max_length=200, blank=True, help_text='Argument to sum, e.g. "amount".'
    )
    total_window_seconds = models.PositiveIntegerField(null=True, blank=True)
    total_above = models.FloatField(
        null=True, blank=True, help_text="Matches when the running total exceeds this."
    )

    # What the rule does.
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.HOLD)
    reason = models.TextField(
        blank=True, help_text="Told to the agent and the reviewer (required for a denial)."
    )
    # Held: who decides; approved or denied at once: who sees it (Verdict.team_id).
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Held: the team whose reviewers decide. Approved or denied at once: "
        "the team whose reviewers see what the rule decided (nobody is notified). "
        "Empty: staff only.",
    )
    required_approvals = models.PositiveSmallIntegerField(default=1)
    time_to_decide_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Shortens the agent's requested timeout to this; never lengthens it.",
    )
    on_timeout = models.CharField(max_length=10, choices=OnTimeout.choices, default=OnTimeout.DENY)
    escalation_chain = models.ForeignKey(
        EscalationChain,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who hears about a held request while it waits. Empty: the default chain.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(required_approvals__gte=1), name="policy_rule_quorum_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(on_timeout="deny"), name="policy_rule_never_approve_on_timeout"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.labels in (None, ""):
            self.labels = []
        if self.outcome == Outcome.DENY and not self.reason.strip():
            errors["reason"] = "A denial needs a reason: the agent is told why it may not act."
        if not isinstance(self.labels, list) or not all(isinstance(x, str) for x in self.labels):
            errors["labels"] = 'Must be a list of strings, e.g. ["pii"].'
        total_fields = (self.total_path, self.total_window_seconds, self.total_above)
        if any(f not in (None, "") for f in total_fields) and not all(
            f not in (None, "") for f in total_fields
        ):
            errors["total_path"] = "A running total needs a path, a window and a threshold."
        if (self.active_from is None) != (self.active_until is None):
            errors["active_until"] = "Give both ends of the time-of-day window, or neither."
        if self.confidence_below is not None and not 0 <= self.confidence_below <= 1:
            errors["confidence_below"] = "Must be between 0 and 1."
        if errors:
            raise ValidationError(errors)


class PolicyCondition(models.Model):
    """A condition on one value inside the request's arguments. A rule's conditions are ANDed."""

    rule = models.ForeignKey(PolicyRule, on_delete=models.CASCADE, related_name="conditions")
    path = models.CharField(
        max_length=200, help_text='Dotted path into the arguments: "amount", "items.0.sku".'
    )
    operator = models.CharField(max_length=10, choices=Operator.choices)
    value = models.JSONField(help_text='JSON: 1000, "EUR", ["EUR", "USD"], true.')
    # Part of the policy's version: any edit here must invalidate cached rules.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.path} {self.operator} {self.value!r}"

    def clean(self) -> None:
        if not self.path or any(not part for part in self.path.split(".")):
            raise ValidationError({"path": 'A dotted path such as "amount" or "customer.id".'})
        if self.operator == Operator.IN and not isinstance(self.value, list):
            raise ValidationError({"value": 'For "in", a JSON list such as ["EUR", "USD"].'})
        if self.operator == Operator.MATCHES:
            if not isinstance(self.value, str):
                raise ValidationError({"value": "A regular expression, as a JSON string."})
            try:
                re.compile(self.value)
            except re.error as error:
                raise ValidationError(
                    {"value": f"Not a valid regular expression: {error}"}
                ) from None
        if self.operator in {Operator.LT, Operator.LE, Operator.GT, Operator.GE} and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float | str)
        ):
            raise ValidationError({"value": "Compare with a number or a string."})


class Throttle(models.Model):
    """At most N auto-approvals per agent per window; beyond that requests are held for a person."""

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: applies to each agent separately.",
    )
    tool_glob = models.CharField(max_length=200, blank=True, help_text="Empty: any tool.")
    impact_at_least = models.CharField(max_length=10, choices=Impact.choices, blank=True)
    max_auto_approvals = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    # Part of the policy version (policies.loading._policy_version): an edit reaches every process.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CircuitBreaker(models.Model):
    """Halts an agent whose requests were denied max_denials times within the window."""

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: applies to each agent separately.",
    )
    max_denials = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    # Part of the policy version (policies.loading._policy_version): an edit reaches every process.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PolicyEvaluation(models.Model):
    """How the policy decided one request: the rule, the outcome and why, in words."""

    approval = models.OneToOneField(
        ApprovalRequest, on_delete=models.PROTECT, related_name="policy_evaluation"
    )
    # The rule may later be edited or deleted; its name at evaluation time is kept.
    rule = models.ForeignKey(
        PolicyRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule_name = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    # Which part decided: rule, default, error, throttle, budget, halt or run.
    decided_by = models.CharField(max_length=16, blank=True)
    reason = models.TextField()
    # The reason as parts, the agent's values kept apart (approvals.reasons); null on old rows.
    reason_parts = models.JSONField(null=True, blank=True)
    shadow_matches = models.JSONField(default=list, blank=True)
    on_timeout = models.CharField(max_length=10, choices=OnTimeout.choices, default=OnTimeout.DENY)
    evaluated_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.outcome} by {self.rule_name or 'default'}"

    @property
    def held_for_team(self) -> Team | None:
        """The team the policy held the request for (its team now: an escalation moves it), as
        the agent is told. None when the policy decided at once: the request still belongs to
        its rule's team, whose reviewers see it (approvals/access.py), but nobody was asked
        to decide it. Reads no team then (creation does not load it, approvals.services)."""
        return self.held_for_team_of(self.approval)

    def held_for_team_of(self, approval: ApprovalRequest) -> Team | None:
        """`held_for_team`, from this copy of the request: a decision's own copy, locked and
        read again, names its team now where the evaluation's cached one may name the old."""
        if self.outcome != Outcome.HOLD:
            return None
        return approval.team


class BudgetScope(models.TextChoices):
    RUN = "run", "Per run (the run's total cost)"
    AGENT_DAY = "agent_day", "Per agent per day (UTC), across its runs"


class BudgetAction(models.TextChoices):
    HOLD = "hold", "Hold for review"
    DENY = "deny", "Deny"


class Budget(models.Model):
    """A cost ceiling, from the costs in runs' trace events. Reached: requests are held or denied.

    A budget never approves anything: it can only turn an approval into a hold, or anything into
    a denial.
    """

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: applies to each agent separately.",
    )
    scope = models.CharField(max_length=10, choices=BudgetScope.choices)
    ceiling = models.DecimalField(
        max_digits=18, decimal_places=8, help_text="In the same unit as trace event costs."
    )
    action = models.CharField(
        max_length=10, choices=BudgetAction.choices, default=BudgetAction.HOLD
    )
    # Part of the policy version (policies.loading._policy_version): an edit reaches every process.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
