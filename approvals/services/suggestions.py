"""AAP's "approve with changes": a denial that suggests arguments, and the resubmission of exactly
those arguments, approved at once where the suggestion's approvals count and it asks for nothing
those reviewers did not see.

A resubmission is not an idempotent replay. A replay repeats the request under its idempotency key
and must match it field for field, `context` whole (approvals.services.creation: otherwise 409
idempotency_conflict). A resubmission is a new request, under a new key, for the arguments a
reviewer suggested on a denied one: it is matched here by agent, tool and arguments, and must
also run where the reviewers saw it run (_context_that_changes_the_action).
"""

import json
from datetime import timedelta
from typing import Any

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
    IMPACT_RANK,
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalVote,
    Decision,
    Impact,
    Source,
    Status,
)
from approvals.reasons import AgentValue, Reason, reason_from_stored, reason_join
from approvals.services.transitions import _transition
from console import exact_json
from console.events import emit


def _approve_if_suggested(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Approve a fresh AAP request at once if reviewers suggested exactly this call, and the
    policy routes it where their approval counts.

    The suggestion must come from a denial of the same agent's request for the same tool, be
    recent, and not have been used yet: one human decision permits one execution. The new
    request was just judged by the policy like any other (it is held, or we would not be here):
    it is approved at once only if those who approved the suggestion may decide it as it is
    routed now and are as many as it needs, and only if it asks for nothing they did not see
    (_beyond_the_suggestion: a higher impact, another server, another working directory or other
    context that changes what the call does). Otherwise it stays held for that team and quorum
    and the suggestion is used up by it; the approvals that count there are carried over as
    votes, each once, unless it asks for more than they saw: then none are, and its hold reason
    says what it asks beyond the suggestion.
    """
    # Compared as canonical JSON text, not with ==, which would equate true with 1 and 1 with 1.0.
    submitted = json.dumps(approval.arguments, sort_keys=True)
    suggestion = _suggestion_unused(approval=approval, canonical=submitted)
    if suggestion is None:
        return approval
    endorsers = _suggestion_endorsers(suggestion, canonical=submitted)
    counted = [user for user in endorsers if reviewer_may_see(user=user, team_id=approval.team_id)]
    beyond = _beyond_the_suggestion(resubmitted=approval, suggested_on=suggestion.approval)
    now = timezone.now()
    try:
        with transaction.atomic():
            # The one-to-one link is the claim: a suggestion serves one resubmission only.
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                approved_as_suggested_on=suggestion.approval
            )
            if beyond:
                _suggestion_exceeded_hold(approval=approval, suggestion=suggestion, beyond=beyond)
            elif len(counted) >= approval.required_approvals:
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
            else:
                _suggestion_votes_carry(approval=approval, suggestion=suggestion, counted=counted)
    except IntegrityError:
        pass  # another resubmission took the suggestion
    except TransitionConflict:
        pass  # decided (or cancelled) meanwhile: that outcome stands
    return ApprovalRequest.objects.get(pk=approval.pk)


def _suggestion_unused(*, approval: ApprovalRequest, canonical: str) -> Decision | None:
    """A recent denial of the same agent's AAP request for the same tool that suggested exactly
    these arguments (`canonical`: as json.dumps with sorted keys) and no resubmission took yet."""
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
    return next(
        (d for d in candidates if json.dumps(d.suggested_arguments, sort_keys=True) == canonical),
        None,
    )


def _beyond_the_suggestion(
    *, resubmitted: ApprovalRequest, suggested_on: ApprovalRequest
) -> list[tuple[str, Reason]]:
    """What a resubmission of suggested arguments asks beyond what the suggestion's reviewers
    saw and approved on `suggested_on`, as (a note in the console's words only, the same with the
    agent's values quoted apart); empty when nothing.

    Tool and arguments already match. But the agent declares the rest again: a higher impact
    than they approved would be approved without the confirmation that impact needs on every
    other path (approvals.services.confirmation; it is not recorded, but it was required for the
    impact they saw, so that impact is what they confirmed), another `server` (AAP's MCP
    extension) is the same tool name on another system, and another `context` where it changes
    what the call does (the working directory of a shell command or a file edit, the repository,
    the host or environment: _context_that_changes_the_action) is the same arguments acting on
    something else. Money is in the arguments, which match.
    """
    beyond: list[tuple[str, Reason]] = []
    was = Impact(suggested_on.impact) if suggested_on.impact in Impact.values else Impact.MEDIUM
    now = Impact(resubmitted.impact) if resubmitted.impact in Impact.values else Impact.CRITICAL
    if IMPACT_RANK[now] > IMPACT_RANK[was]:
        # Impacts are the model's choices, validated on the way in: the console's words.
        words = f"it declares {now.value} impact where that request had {was.value}"
        beyond.append((words, Reason.of(words)))
    if _server(resubmitted) != _server(suggested_on):
        beyond.append(
            (
                "it names another server than that request did",
                Reason.format(
                    "it names the server %s where that request named %s",
                    _server_value(resubmitted),
                    _server_value(suggested_on),
                ),
            )
        )
    context = _context_beyond(resubmitted=resubmitted, suggested_on=suggested_on)
    if context:
        beyond.append(("it runs in another context than that request did", context))
    return beyond


def _server(approval: ApprovalRequest) -> str:
    """The request's `server` as canonical JSON, key order and spacing aside; "" when it names
    none (absent or null)."""
    value = exact_json.loads(approval.server_raw) if approval.server_raw else None
    return "" if value is None else exact_json.canonical(value)


def _server_value(approval: ApprovalRequest) -> AgentValue | str:
    value = exact_json.loads(approval.server_raw) if approval.server_raw else None
    return "none" if value is None else AgentValue(exact_json.to_plain(value))


# `context` keys (AAP's RuntimeContext, the adapter's, open) that name the attempt, the moment or
# the conversation, never what the call acts on: a resubmission is another attempt, often in
# another session, so these differ on every ordinary one. Compared case, "_" and "-" aside. Any
# other key counts, unknown ones too (fail closed): an approval given for a call in one working
# directory, repository, host or environment does not carry over to the same call in another.
# The AAP project's Claude Code hook sends runtime, session_id, cwd and call_id; its Codex hook
# adds hook_event and turn_id; this SDK's MCP server sends client and tool_use_id.
_CONTEXT_NOT_THE_ACTION = frozenset(
    {
        *("session", "sessionid", "conversationid", "threadid", "turnid", "runid"),
        *("callid", "toolcallid", "tooluseid", "requestid", "messageid", "traceid", "spanid"),
        *("time", "timestamp", "ts", "createdat", "sentat", "requestedat"),
        *("note", "notes", "comment", "comments"),
    }
)


def _context_key_changes_the_action(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") not in _CONTEXT_NOT_THE_ACTION


def _context_that_changes_the_action(approval: ApprovalRequest) -> dict[str, Any]:
    """The request's `context` without the keys that do not change what the call does, as
    parsed from the exact text the agent sent (numbers exact); {} when it sent none."""
    value = exact_json.loads(approval.context_raw) if approval.context_raw else None
    if value is None:
        return {}
    if not isinstance(value, dict):  # the API takes objects only; anything else counts whole
        return {"": value}
    return {key: item for key, item in value.items() if _context_key_changes_the_action(key)}


def _context_beyond(*, resubmitted: ApprovalRequest, suggested_on: ApprovalRequest) -> Reason:
    """Where the resubmission's context differs from the suggestion's request in what the call
    does (a key present in one only differs too), the agent's keys and values quoted apart;
    an empty reason when it does not. Values compare as canonical JSON: key order, spacing and
    1.0 against 1 aside."""
    now = _context_that_changes_the_action(resubmitted)
    was = _context_that_changes_the_action(suggested_on)
    differing = [
        key
        for key in sorted(now.keys() | was.keys())
        if (key in now) != (key in was)
        or exact_json.canonical(now[key]) != exact_json.canonical(was[key])
    ]
    return reason_join(
        [
            Reason.format(
                "in its context %s is %s where that request had %s",
                AgentValue(key),
                _context_value(now, key),
                _context_value(was, key),
            )
            for key in differing
        ],
        "; ",
    )


def _context_value(context: dict[str, Any], key: str) -> AgentValue | str:
    return AgentValue(exact_json.to_plain(context[key])) if key in context else "none"


def _suggestion_exceeded_hold(
    *, approval: ApprovalRequest, suggestion: Decision, beyond: list[tuple[str, Reason]]
) -> None:
    """A resubmission asking for more than the suggestion's reviewers approved: held as the
    policy routed it, for a reviewer who sees (and, at its impact, confirms) all of it. No
    approval is carried over as a vote: none was given for what it asks now. The reason is added
    to its hold reason, which the decision page, the queue and notifications show."""
    code = suggestion.approval.code
    lead = f"Resubmission of the arguments suggested on request {code}, not approved as suggested: "
    reason = Reason.of(lead, reason_join([why for _, why in beyond], "; "), ".")
    held = reason_from_stored(approval.hold_reason, approval.hold_reason_parts)
    if held:
        # The policy's reason first: it still holds the request, for that team and quorum.
        reason = reason_join([held, reason], " " if str(held).endswith(".") else ". ")
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        hold_reason=str(reason), hold_reason_parts=reason.as_json()
    )
    # Shown as the console's own words (note_show): no agent values in it.
    _resubmission_event(approval=approval, note=lead + "; ".join(w for w, _ in beyond) + ".")
    emit(RequestChanged(approval_id=approval.pk))


def _resubmission_event(*, approval: ApprovalRequest, note: str) -> None:
    """Why a resubmission of suggested arguments was not approved at once, in its history."""
    ApprovalEvent.objects.create(
        approval_id=approval.pk,
        kind="suggestion_resubmitted",
        from_status=Status.PENDING,
        to_status=Status.PENDING,
        actor_type=ActorType.SYSTEM,
        note=note,
    )


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
    _resubmission_event(approval=approval, note=note)
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
