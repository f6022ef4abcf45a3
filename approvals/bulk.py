"""Deciding several requests at once from the queue: deny with one reason, approve low impact.

Nothing here decides on its own terms. Each request is fetched through the reviewer's access
rule and decided by the same service a single decision uses (approvals.reviews), one at a time,
each in its own transaction: one request that fails (decided meanwhile, not this reviewer's,
the reviewer operates its agent) is reported and never stops or undoes the others. Bulk approve
takes low-impact requests only, checked here on the server whatever the page sent.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from approvals.exceptions import (
    ApprovalNotVisible,
    ReviewRejected,
    TransitionConflict,
)
from approvals.models import ApprovalRequest, Impact
from approvals.reviews import check_approval_request_approve, check_approval_request_deny
from approvals.selectors import approval_get_for_reviewer

# The most requests one bulk action takes: a confirmation list a person can still read.
BULK_MAX = 100

APPROVE = "approve"
DENY = "deny"


@dataclass(frozen=True)
class BulkItem:
    """One request of a bulk action: before (may it be included?) or after (what happened)."""

    code: UUID
    approval: ApprovalRequest | None  # None: no such request, or not this reviewer's to see
    ok: bool
    message: str


def _codes(raw_codes: list[str]) -> list[UUID]:
    codes: list[UUID] = []
    for raw in raw_codes:
        try:
            code = UUID(str(raw))
        except ValueError:
            continue  # not a request code: nothing to find
        if code not in codes:
            codes.append(code)
    return codes


class BulkRefused(ValueError):
    """The bulk action as asked cannot start (nothing picked, too many, unknown action)."""


def bulk_codes_check(*, action: str, raw_codes: list[str]) -> list[UUID]:
    """The request codes of a bulk action, or BulkRefused naming what is wrong."""
    if action not in {APPROVE, DENY}:
        raise BulkRefused("Unknown bulk action: choose approve or deny.")
    codes = _codes(raw_codes)
    if not codes:
        raise BulkRefused("Tick at least one request first.")
    if len(codes) > BULK_MAX:
        raise BulkRefused(f"At most {BULK_MAX} requests at once; {len(codes)} were ticked.")
    return codes


def _refusal(*, action: str, approval: ApprovalRequest | None) -> str:
    """Why `approval` cannot be part of this bulk action, or "" if it can (as far as a read
    shows: the decision itself re-checks everything)."""
    if approval is None:
        return "Not found, or not yours to decide."
    if approval.status != "pending":
        return f"Already {approval.status}."
    if action == APPROVE and approval.impact != Impact.LOW:
        return (
            f"{approval.get_impact_display()} impact: open it and decide it on its own page "
            "(bulk approve takes low-impact requests only)."
        )
    return ""


def bulk_preview(*, action: str, codes: list[UUID], reviewer: Any) -> list[BulkItem]:
    """What a bulk action would take, for the confirmation list: each request as the reviewer
    may see it, with why it would be left out."""
    items = []
    for code in codes:
        approval = approval_get_for_reviewer(user=reviewer, code=code)
        refusal = _refusal(action=action, approval=approval)
        items.append(
            BulkItem(code=code, approval=approval, ok=not refusal, message=refusal or "Included.")
        )
    return items


def _decide_one(*, action: str, code: UUID, reviewer: Any, reason: str) -> BulkItem:
    approval = approval_get_for_reviewer(user=reviewer, code=code)
    refusal = _refusal(action=action, approval=approval)
    if refusal:
        return BulkItem(code=code, approval=approval, ok=False, message=refusal)
    assert approval is not None
    try:
        if action == DENY:
            check_approval_request_deny(approval=approval, reviewer=reviewer, reason=reason)
            return BulkItem(code=code, approval=approval, ok=True, message="Denied.")
        # Bulk confirms no tool by name: the service refuses any approval that needs it (high
        # and critical impact), should one get past the low-impact check above.
        outcome = check_approval_request_approve(
            approval=approval, reviewer=reviewer, note=reason, confirmed=None
        )
    except TransitionConflict as conflict:
        message = f"Not recorded: someone else got there first; it is {conflict.current_status}."
        return BulkItem(code=code, approval=approval, ok=False, message=message)
    except ReviewRejected as error:
        return BulkItem(code=code, approval=approval, ok=False, message=str(error))
    except ApprovalNotVisible:
        return BulkItem(code=code, approval=None, ok=False, message="No longer yours to decide.")
    if outcome.decided:
        return BulkItem(code=code, approval=approval, ok=True, message="Approved.")
    return BulkItem(
        code=code,
        approval=approval,
        ok=True,
        message=f"Your approval is recorded ({outcome.votes} of {outcome.required}); "
        "it waits for another reviewer.",
    )


def approvals_bulk_deny(*, codes: list[UUID], reviewer: Any, reason: str) -> list[BulkItem]:
    """Deny each request with the same reason (told to each agent); one result per request."""
    reason = reason.strip()
    if not reason:
        raise BulkRefused("Say why: each agent is told the reason.")
    return [_decide_one(action=DENY, code=code, reviewer=reviewer, reason=reason) for code in codes]


def approvals_bulk_approve(*, codes: list[UUID], reviewer: Any, note: str = "") -> list[BulkItem]:
    """Approve each low-impact request as submitted; anything else is refused, not approved."""
    return [
        _decide_one(action=APPROVE, code=code, reviewer=reviewer, reason=note.strip())
        for code in codes
    ]
