"""The approvals app's models, one module per subject. Everything is imported here, so Django
registers every model with the app and callers import from approvals.models.

requests: approval requests, decisions, history, votes, claims, presence
notifications: preferences, the notification outbox, Slack messages and links
escalations: escalation chains, steps and firings
policies: policy rules and guardrails, and each request's evaluation
outcomes: what happened after the decision (one outcome per request)
reviewing: the decision page's preset deny reasons and each reviewer's page settings
approvals.audit.models: the audit trail's tables (declared in the audit package, below these)
"""

from approvals.audit.models import (
    AuditActorType,
    AuditChainHead,
    AuditPruneCheckpoint,
    AuditRecord,
)
from approvals.models.escalations import (
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    EscalationTrigger,
)
from approvals.models.notifications import (
    REASON_OUTCOME_FAILED,
    Channel,
    EmailDigest,
    EmailMode,
    Notification,
    NotificationAttempt,
    NotificationPreference,
    NotificationStatus,
    SlackLinkClaim,
    SlackMessage,
)
from approvals.models.outcomes import (
    APPROVED_BY_RULE,
    OutcomeSource,
    OutcomeStatus,
    OutcomeTally,
    RequestOutcome,
)
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
from approvals.models.requests import (
    CONFIRMED_IMPACTS,
    IMPACT_RANK,
    TERMINAL_STATUSES,
    ActorType,
    ApprovalClaim,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalVote,
    Decision,
    DecisionPageView,
    Impact,
    Kind,
    ReviewerPresence,
    Source,
    Status,
    Team,
)
from approvals.models.reviewing import DenyReasonPreset, ReviewerPageSettings

__all__ = [
    "APPROVED_BY_RULE",
    "CONFIRMED_IMPACTS",
    "IMPACT_RANK",
    "REASON_OUTCOME_FAILED",
    "TERMINAL_STATUSES",
    "ActorType",
    "ApprovalClaim",
    "ApprovalEvent",
    "ApprovalRequest",
    "ApprovalVote",
    "AuditActorType",
    "AuditChainHead",
    "AuditPruneCheckpoint",
    "AuditRecord",
    "Budget",
    "BudgetAction",
    "BudgetScope",
    "Channel",
    "CircuitBreaker",
    "Decision",
    "DecisionPageView",
    "DenyReasonPreset",
    "EmailDigest",
    "EmailMode",
    "EscalationChain",
    "EscalationFiring",
    "EscalationStep",
    "EscalationTrigger",
    "Impact",
    "Kind",
    "Notification",
    "NotificationAttempt",
    "NotificationPreference",
    "NotificationStatus",
    "OnTimeout",
    "Operator",
    "Outcome",
    "OutcomeSource",
    "OutcomeStatus",
    "OutcomeTally",
    "PolicyCondition",
    "PolicyEvaluation",
    "PolicyRule",
    "RequestOutcome",
    "ReviewerPageSettings",
    "ReviewerPresence",
    "RuleState",
    "SlackLinkClaim",
    "SlackMessage",
    "Source",
    "Status",
    "Team",
    "Throttle",
]
