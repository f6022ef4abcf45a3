"""AAP's "approve with changes": a denial that suggests arguments, and the resubmission of exactly
those arguments, approved at once where the suggestion's approvals count."""

import json
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.access import reviewer_may_see
from approvals.audit import AuditAction, audit_record
from approvals.events import RequestChanged
from approvals.exceptions import (
    TransitionConflict,
)
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalVote,
    Decision,
    Source,
    Status,
)
from approvals.services.transitions import _transition
from console.events import emit


def _approve_if_suggested(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Approve a fresh AAP request at once if reviewers suggested exactly this call, and the
    policy routes it where their approval counts.

    The suggestion must come from a denial of the same agent's request for the same tool, be
    recent, and not have been used yet: one human decision permits one execution. The new
    request was just judged by the policy like any other (it is held, or we would not be here):
    it is approved at once only if those who approved the suggestion may decide it as it is
    routed now and are as many as it needs. Otherwise it stays held for that team and quorum,
    the suggestion is used up by it, and the approvals that count there are carried over as
    votes, each once.
    """
    since = timezone.now() - timedelta(seconds=settings.APPROVAL_SUGGESTION_VALIDITY_SECONDS)
    candidates = Decision.objects.filter(
        approval__agent_id=approval.agent_id,
        approval__tool=approval.tool,
        approval__source=Source.AAP,
        approval__suggestion_taken_by__isnull=True,
        status=Status.DENIED,
        suggested_arguments__isnull=False,
        decided_at__gte=since,
    ).select_related("approval", "reviewer")
    submitted = json.dumps(approval.arguments, sort_keys=True)
    # Compared as canonical JSON text, not with ==, which would equate true with 1 and 1 with 1.0.
    suggestion = next(
        (d for d in candidates if json.dumps(d.suggested_arguments, sort_keys=True) == submitted),
        None,
    )
    if suggestion is None:
        return approval
    endorsers = _suggestion_endorsers(suggestion, canonical=submitted)
    counted = [user for user in endorsers if reviewer_may_see(user=user, team_id=approval.team_id)]
    now = timezone.now()
    try:
        with transaction.atomic():
            # The one-to-one link is the claim: a suggestion serves one resubmission only.
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                approved_as_suggested_on=suggestion.approval
            )
            if len(counted) >= approval.required_approvals:
                return _transition(
                    approval=approval,
                    to_status=Status.APPROVED,
                    actor_type=ActorType.REVIEWER,
                    actor_user=suggestion.reviewer,
                    note="Approved as suggested by the reviewer on request "
                    f"{suggestion.approval.code}.",
                    now=now,
                    event_kind="approved_as_suggested",
                )
            _suggestion_votes_carry(approval=approval, suggestion=suggestion, counted=counted)
    except IntegrityError:
        pass  # another resubmission took the suggestion
    except TransitionConflict:
        pass  # decided (or cancelled) meanwhile: that outcome stands
    return ApprovalRequest.objects.get(pk=approval.pk)


def _suggestion_endorsers(suggestion: Decision, *, canonical: str) -> list[User]:
    """Who approved the suggested arguments: the reviewer who decided, and the quorum's voters
    for exactly those arguments."""
    endorsers = [suggestion.reviewer] if suggestion.reviewer is not None else []
    votes = ApprovalVote.objects.filter(approval_id=suggestion.approval_id).select_related(
        "reviewer"
    )
    for vote in votes:
        same = json.dumps(vote.arguments, sort_keys=True) == canonical
        if same and vote.reviewer not in endorsers:
            endorsers.append(vote.reviewer)
    return endorsers


def _suggestion_votes_carry(
    *, approval: ApprovalRequest, suggestion: Decision, counted: list[User]
) -> None:
    """A resubmission the suggestion's approvals do not suffice for: it stays held, with the
    approvals that count for its team recorded as its votes and the reason in its history."""
    for user in counted:
        ApprovalVote.objects.create(
            approval=approval,
            reviewer=user,
            note=f"Approved these arguments on request {suggestion.approval.code}.",
        )
    who = ", ".join(user.get_username() for user in counted) or "none of them"
    team = approval.team.name if approval.team else "staff"
    note = (
        f"Resubmission of the arguments suggested on request {suggestion.approval.code}. The "
        f"policy holds it for {team} with {approval.required_approvals} approval"
        f"{'s' if approval.required_approvals != 1 else ''}, more than the suggestion's "
        f"approvals give here; counted: {who}."
    )
    ApprovalEvent.objects.create(
        approval_id=approval.pk,
        kind="suggestion_resubmitted",
        from_status=Status.PENDING,
        to_status=Status.PENDING,
        actor_type=ActorType.SYSTEM,
        note=note,
    )
    audit_record(
        action=AuditAction.VOTE_CAST,
        target=approval,
        after={
            "carried_from": str(suggestion.approval.code),
            "reviewers": [user.get_username() for user in counted],
            "required": approval.required_approvals,
        },
    )
    emit(RequestChanged(approval_id=approval.pk))
