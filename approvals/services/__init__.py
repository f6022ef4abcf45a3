"""Every write to approval requests, one module per job.

creation: creating requests, one or batched, decided by the policy or held
transitions: the state machine (approve, deny, cancel, expire), one compare-and-set each
decisions: what a decision writes (Decision, history event, audit record), for both of them
suggestions: AAP's approve-with-changes as a denial that suggests, and its resubmission
arguments: checking arguments against a request's JSON Schema
page_views: when a reviewer first opened a request
confirmation: the confirmation naming the tool that a high- or critical-impact approval needs,
  and what the decision page asks a reviewer to type for it
outcomes: what happened after the decision, one outcome per request

Nothing here checks permission: the caller has decided who may act (system code, or a check_*
function of approvals.reviews, which checks access first and then calls these, zulip's
check_*/do_* split). Escalations live in
approvals.escalations; moving a request to another team in approvals.reassign. Everything
public is importable from approvals.services.
"""

from approvals.services.arguments import approval_arguments_validate, arguments_schema_errors
from approvals.services.confirmation import (
    CONFIRMATION_PARAM,
    CONFIRMATION_REQUIRED,
    CONFIRMATION_WORD,
    ConfirmationAsked,
    approval_confirmation_asked,
    approval_confirmation_check,
    approval_confirmation_typed,
)
from approvals.services.creation import (
    DURATION_PATTERN,
    CreateResult,
    NewApprovalRequest,
    Submission,
    approval_request_create,
    approval_requests_create,
)
from approvals.services.decisions import DecisionRecords, decision_records_build
from approvals.services.outcomes import (
    NOT_APPROVED,
    OUTCOME_ALREADY_REPORTED,
    OutcomeReport,
    approval_outcome_report,
    approval_outcomes_from_trace,
    approval_outcomes_mark_not_reported,
)
from approvals.services.page_views import decision_page_view_record
from approvals.services.transitions import (
    ALLOWED_TRANSITIONS,
    CHANGE_NEEDS_REVIEW,
    POLICY_DENIES,
    QUORUM_CHANGED,
    approval_request_answer,
    approval_request_approve,
    approval_request_cancel,
    approval_request_cancel_for_halt,
    approval_request_deny,
    approval_request_expire,
    approval_request_expire_if_overdue,
    approval_request_system_deny,
    approval_requests_expire_overdue,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CHANGE_NEEDS_REVIEW",
    "CONFIRMATION_PARAM",
    "CONFIRMATION_REQUIRED",
    "CONFIRMATION_WORD",
    "DURATION_PATTERN",
    "NOT_APPROVED",
    "OUTCOME_ALREADY_REPORTED",
    "POLICY_DENIES",
    "QUORUM_CHANGED",
    "ConfirmationAsked",
    "CreateResult",
    "DecisionRecords",
    "NewApprovalRequest",
    "OutcomeReport",
    "Submission",
    "approval_arguments_validate",
    "approval_confirmation_asked",
    "approval_confirmation_check",
    "approval_confirmation_typed",
    "approval_outcome_report",
    "approval_outcomes_from_trace",
    "approval_outcomes_mark_not_reported",
    "approval_request_answer",
    "approval_request_approve",
    "approval_request_cancel",
    "approval_request_cancel_for_halt",
    "approval_request_create",
    "approval_request_deny",
    "approval_request_expire",
    "approval_request_expire_if_overdue",
    "approval_request_system_deny",
    "approval_requests_create",
    "approval_requests_expire_overdue",
    "arguments_schema_errors",
    "decision_page_view_record",
    "decision_records_build",
]
