"""The approval state machine: every move of a request out of pending.

pending -> approved | denied | expired | cancelled, and nothing else. Each transition is a
compare-and-set: the request's row is locked, checked (still pending, still the team and quorum the
caller saw, the deadline), and only then updated. Under any race exactly one caller changes the row,
and everyone else finds it changed and gets a TransitionConflict. The winner writes the Decision
and the ApprovalEvent in the same transaction, and emits a domain event
(approvals.events): what reacts to it (pushes, notifications, webhooks) subscribes, and pushes
go out after commit, so nobody is told about an outcome that was rolled back."""

import json
import logging
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import ForeignKey, OneToOneRel
from django.utils import timezone

from agents.models import Agent
from approvals.access import reviewer_may_see
from approvals.agent_view import approval_request_representation
from approvals.audit import audit_records_append
from approvals.escalations import expiry_note
from approvals.events import DenialCounted, RequestResolved
from approvals.exceptions import (
    ApprovalNotVisible,
    ReviewRejected,
    TransitionConflict,
)
from approvals.models import (
    ActorType,
    ApprovalRequest,
    Decision,
    Kind,
    Source,
    Status,
)
from approvals.policies.changes import ChangeRouting, change_routing_judge
from approvals.selectors import approval_lock
from approvals.services.decisions import decision_records_build
from console.events import emit
from console.hot_statements import runs_again_if_prepared_stale

logger = logging.getLogger(__name__)

# The compare-and-set's write, once the locked row passed the compare (_may_transition).
_DECIDES = (
    f'UPDATE "{ApprovalRequest._meta.db_table}" '  # noqa: S608 (a model's table, not input)
    "SET status = %s, decided_at = %s WHERE id = %s"
)

# ReviewRejected codes for changed arguments: the policy denies them; they need more review
# (another team, more approvals) than the approvals given; the quorum changed meanwhile.
POLICY_DENIES = "policy_denies"
CHANGE_NEEDS_REVIEW = "change_needs_review"
QUORUM_CHANGED = "quorum_changed"

# The one table of allowed transitions. Terminal states have no way out.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.DENIED, Status.EXPIRED, Status.CANCELLED}),
}


def approval_request_approve(
    *,
    approval: ApprovalRequest,
    reviewer: User,
    note: str = "",
    arguments: dict[str, Any] | None = None,
    routing: ChangeRouting | None = None,
) -> ApprovalRequest:
    """Approve, optionally with changed arguments ("approve with changes").

    `arguments` equal to the submitted ones count as a plain approval. Changed arguments pass
    only if the policy, judging them as a new request, neither denies them nor routes them
    beyond `reviewer` (approvals.policies.changes): otherwise ReviewRejected, nothing recorded.
    `routing`: the judgment approvals.reviews made in the caller's transaction and checked the
    request's counted votes against (a quorum's voters, not one reviewer); None judges here.
    """
    if approval.kind == Kind.QUESTION:
        # Approved without an answer, the agent would get nothing to act on: it is answered.
        raise ValueError("A question is answered (approval_request_answer), not approved.")
    now = timezone.now()
    approved_arguments = None if arguments in (None, approval.arguments) else arguments
    # Changed arguments: one transaction, so the agent's row, locked by the judgment, stays
    # locked until the change is approved and no running total or throttle moves in between. A
    # plain approval takes none: an overdue request it finds expires for good, not rolled back.
    with transaction.atomic() if approved_arguments is not None else nullcontext():
        if approved_arguments is not None:
            if routing is None:
                routing = change_routing_judge(approval=approval, arguments=approved_arguments)
                _change_ensure_routed_alike(approval=approval, routing=routing)
            if approval.source == Source.AAP:
                return _deny_with_suggestion(
                    approval=approval,
                    reviewer=reviewer,
                    note=note,
                    arguments=approved_arguments,
                    now=now,
                )
        return _transition(
            approval=approval,
            to_status=Status.APPROVED,
            actor_type=ActorType.REVIEWER,
            actor_user=reviewer,
            note=note,
            now=now,
            approved_arguments=approved_arguments,
        )


def approval_request_answer(
    *, approval: ApprovalRequest, reviewer: User, answer: Any, note: str = ""
) -> ApprovalRequest:
    """Answer a question: it ends approved, the answer on its decision.

    The caller has checked `answer` against the request's answer_schema
    (approvals.reviews.check_approval_request_answer). One answer decides: a question has no
    quorum, there is nothing to vote on until someone has said what the answer is.
    """
    if approval.kind != Kind.QUESTION:
        raise ValueError("Only a question is answered; an approval is approved or denied.")
    return _transition(
        approval=approval,
        to_status=Status.APPROVED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=note,
        answer=answer,
        event_kind="answered",
    )


def _deny_with_suggestion(
    *,
    approval: ApprovalRequest,
    reviewer: User,
    note: str,
    arguments: dict[str, Any],
    now: datetime,
) -> ApprovalRequest:
    """AAP has no way to say "approved, but run these arguments instead": an adapter would run
    the submitted call. So an edit becomes a denial that carries the suggestion, and an exact
    resubmission of it from the same agent is approved at once when the policy routes it as it
    routed this change (approvals.services.suggestions)."""
    suggestion = json.dumps(arguments, ensure_ascii=False)
    return _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=(f"{note.strip()}\n\n" if note.strip() else "")
        + "The reviewer would approve these arguments instead; resubmit exactly these to "
        f"be approved at once: {suggestion}",
        now=now,
        suggested_arguments=arguments,
        event_kind="denied_with_suggestion",
    )


def _change_ensure_routed_alike(*, approval: ApprovalRequest, routing: ChangeRouting) -> None:
    """For callers without the reviews layer's vote count: refuse changed arguments the policy
    denies, or routes to another team or to more approvals than the request has. (The reviews
    layer instead counts who approved them, and records a proposal where they fall short.)"""
    if routing.refused:
        raise ReviewRejected(routing.refusal_message(), code=POLICY_DENIES, param="arguments")
    if routing.routes and (
        routing.team_id != approval.team_id
        or routing.required_approvals > approval.required_approvals
    ):
        raise ReviewRejected(
            f"Not recorded: the policy holds these arguments for {routing.describe()}, not as "
            f"this request is routed. {routing.verdict.reason}",
            code=CHANGE_NEEDS_REVIEW,
            param="arguments",
        )


def approval_request_deny(
    *, approval: ApprovalRequest, reviewer: User, reason: str
) -> ApprovalRequest:
    reason = reason.strip()
    if not reason:
        raise ValueError("A denial needs a reason: the agent is told why it may not act.")
    denied = _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=reason,
    )
    emit(DenialCounted(agent_id=denied.agent_id))
    return denied


def approval_request_cancel_for_halt(
    *, approval: ApprovalRequest, halted_by: User | None, note: str
) -> ApprovalRequest:
    """Cancel a pending request because its agent was halted (by a reviewer or the breaker)."""
    return _transition(
        approval=approval,
        to_status=Status.CANCELLED,
        actor_type=ActorType.REVIEWER if halted_by is not None else ActorType.SYSTEM,
        actor_user=halted_by,
        note=note,
    )


def approval_request_system_deny(*, approval: ApprovalRequest, reason: str) -> ApprovalRequest:
    """Deny on the console's own authority (a halted or closed run), with the reason."""
    return _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.SYSTEM,
        note=reason,
    )


def approval_request_cancel(
    *,
    approval: ApprovalRequest,
    agent: Agent,
    note: str = "Withdrawn by the agent.",
    notify: bool = True,
) -> ApprovalRequest:
    """Withdraw a pending request. Cancelling a cancelled request returns it unchanged.

    `notify=False` records no webhook event: deleting an AAP instance retires its receiver too.
    """
    try:
        return _transition(
            approval=approval,
            to_status=Status.CANCELLED,
            actor_type=ActorType.AGENT,
            actor_agent=agent,
            note=note,
            notify=notify,
        )
    except TransitionConflict as conflict:
        if conflict.current_status == Status.CANCELLED:
            return ApprovalRequest.objects.get(pk=approval.pk)
        raise


def approval_request_expire(*, approval: ApprovalRequest) -> ApprovalRequest:
    return _transition(
        approval=approval,
        to_status=Status.EXPIRED,
        actor_type=ActorType.SYSTEM,
        note=expiry_note(approval_id=approval.pk),
    )


def approval_request_expire_if_overdue(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Expire a pending request whose deadline has passed; return its current state either way.

    Called on every read, so an agent never sees `pending` (or a late approval) after the
    deadline even when beat is behind.
    """
    if approval.status != Status.PENDING or approval.deadline_at > timezone.now():
        return approval
    try:
        return approval_request_expire(approval=approval)
    except TransitionConflict:
        return ApprovalRequest.objects.get(pk=approval.pk)


def approval_requests_expire_overdue(*, now: datetime | None = None, limit: int = 500) -> int:
    """Expire pending requests past their deadline, oldest first. Returns how many expired."""
    now = now or timezone.now()
    overdue = list(
        ApprovalRequest.objects.filter(status=Status.PENDING, deadline_at__lte=now)
        .order_by("deadline_at")
        .only("pk", "status", "deadline_at")[:limit]
    )
    expired = 0
    for approval in overdue:
        try:
            approval_request_expire(approval=approval)
            expired += 1
        except TransitionConflict:
            continue  # decided or cancelled meanwhile: that outcome stands
    return expired


def _may_transition(
    locked: ApprovalRequest,
    *,
    expected: ApprovalRequest,
    to_status: str,
    actor_type: str,
    now: datetime,
    approving: bool = False,
) -> bool:
    """Whether the locked row may move to `to_status` now: the compare of compare-and-set.

    `approving`: a reviewer approves (or, for AAP, suggests changed arguments).
    """
    if locked.status != Status.PENDING:
        return False
    if actor_type == ActorType.REVIEWER and locked.team_id != expected.team_id:
        # The reviewer's access was checked against the team the request had then: if it has
        # been escalated since, this decision must not land on the strength of that check.
        return False
    if approving and locked.required_approvals != expected.required_approvals:
        # The votes were counted against the quorum the request had then: a proposed change
        # that raised it meanwhile (approvals.reviews) must not be outrun by a stale approval.
        return False
    # Expiry happens only at or after the deadline; anything else only before it. This is what
    # makes "never approved late" hold even if beat has not run yet.
    if to_status == Status.EXPIRED:
        return locked.deadline_at <= now
    return locked.deadline_at > now


# long: the compare-and-set and what it writes read as one (rows: decisions.py)
@runs_again_if_prepared_stale  # a stale plan's run again compares again: a race lost stays lost
def _transition(
    *,
    approval: ApprovalRequest,
    to_status: str,
    actor_type: str,
    actor_user: User | None = None,
    actor_agent: Agent | None = None,
    note: str = "",
    now: datetime | None = None,
    approved_arguments: dict[str, Any] | None = None,
    suggested_arguments: dict[str, Any] | None = None,
    answer: Any = None,
    event_kind: str | None = None,
    notify: bool = True,
) -> ApprovalRequest:
    now = now or timezone.now()
    if to_status not in ALLOWED_TRANSITIONS[Status.PENDING]:
        raise ValueError(f"No transition leads to {to_status!r}.")

    approving = actor_type == ActorType.REVIEWER and (
        to_status == Status.APPROVED or suggested_arguments is not None
    )
    with transaction.atomic():
        locked = approval_lock(approval.pk)
        changed = locked is not None and _may_transition(
            locked,
            expected=approval,
            to_status=to_status,
            actor_type=actor_type,
            now=now,
            approving=approving,
        )
        if locked is not None and changed:
            records = decision_records_build(
                approval=approval,
                status=to_status,
                actor_type=actor_type,
                decided_at=now,
                note=note,
                actor_user=actor_user,
                actor_agent=actor_agent,
                approved_arguments=approved_arguments,
                suggested_arguments=suggested_arguments,
                answer=answer,
                event_kind=event_kind,
            )
            # In the transaction: the outbox rows it leads to (Slack updates, the AAP webhook
            # event) commit with the decision or not at all; pushes go after commit. Emitted
            # before the decision's rows are written (what it leads to needs only the request,
            # and the view built here from the locked row): the agents' push is then the first
            # thing after the commit (the audit trail logs each record after commit too), the
            # outbox reads are not made while every audited write waits on the chain's head,
            # and the decision's rows can go in with the head's lock, below.
            emit(
                RequestResolved(
                    approval_id=approval.pk,
                    code=str(approval.code),
                    status=to_status,
                    source=approval.source,
                    decided_at=now,
                    agent_view=_agent_view_decided(
                        locked,
                        approval,
                        status=to_status,
                        decided_at=now,
                        decision=records.decision,
                    ),
                    notify_agent=notify,
                )
            )
            # The row is locked and was just checked, so the update changes exactly it. The
            # decision's rows, the update and the audit head's lock go in one round trip, one
            # fewer before the commit than the rows and the lock one after the other.
            decides = [to_status, connection.ops.adapt_datetimefield_value(now), locked.pk]
            audit_records_append(
                [records.audit],
                along_with=[[records.decision], [records.event]],
                along_with_statements=[(_DECIDES, decides)],
            )

    current = ApprovalRequest.objects.select_related("decision").get(pk=approval.pk)
    if changed:
        return current
    if _rerouted_and_still_decidable(
        current,
        expected=approval,
        actor_type=actor_type,
        actor_user=actor_user,
        approving=approving,
    ):
        # Escalated meanwhile: the reviewer may see the new team too, and decides it as it is.
        return _transition(
            approval=current,
            to_status=to_status,
            actor_type=actor_type,
            actor_user=actor_user,
            actor_agent=actor_agent,
            note=note,
            now=now,
            approved_arguments=approved_arguments,
            suggested_arguments=suggested_arguments,
            answer=answer,
            event_kind=event_kind,
            notify=notify,
        )
    if current.status == Status.PENDING and to_status != Status.EXPIRED:
        # Still pending, so the deadline must have passed: it expires now, not approves late.
        current = approval_request_expire_if_overdue(approval=current)
    raise TransitionConflict(current_status=current.status)


def _agent_view_decided(
    locked: ApprovalRequest,
    approval: ApprovalRequest,
    *,
    status: str,
    decided_at: datetime,
    decision: Decision,
) -> dict[str, Any]:
    """What the agent's read of the request will answer once this transition commits: the
    locked row as the update leaves it, with the decision just written. Pushed to the agents
    waiting on it, so the push after the commit reads nothing first.

    The rows the view shows beside the request's own (its run, team and policy evaluation) are
    the caller's copy's where it loaded them and they are the locked row's, as the reviewer's
    request loads them; any other is read here. A pending request has no outcome yet (one is
    reported only once it is decided), so none is read.
    """
    locked.status, locked.decided_at = status, decided_at
    for name in ("run", "team"):
        field = ApprovalRequest._meta.get_field(name)
        assert isinstance(field, ForeignKey)
        if field.is_cached(approval) and (
            getattr(approval, field.attname) == getattr(locked, field.attname)
        ):
            field.set_cached_value(locked, field.get_cached_value(approval))
    evaluation = ApprovalRequest._meta.get_field("policy_evaluation")
    assert isinstance(evaluation, OneToOneRel)
    if evaluation.is_cached(approval):  # written with the request, never changed
        evaluation.set_cached_value(locked, evaluation.get_cached_value(approval))
    outcome = ApprovalRequest._meta.get_field("outcome")
    assert isinstance(outcome, OneToOneRel)
    outcome.set_cached_value(locked, None)
    locked.decision = decision
    return approval_request_representation(locked)


def _rerouted_and_still_decidable(
    current: ApprovalRequest,
    *,
    expected: ApprovalRequest,
    actor_type: str,
    actor_user: User | None,
    approving: bool,
) -> bool:
    """After a lost compare-and-set: whether the request was only escalated meanwhile and the
    reviewer may decide it where it is now (then decide again). Raises when the reviewer may no
    longer see it, or when a proposed change raised its quorum under their vote."""
    rerouted = (
        actor_type == ActorType.REVIEWER
        and current.status == Status.PENDING
        and current.team_id != expected.team_id
    )
    # Only a reviewer's update checks the team. Anyone who may not see the new team is told it
    # is not there, as for any request they cannot see.
    if rerouted and not reviewer_may_see(user=actor_user, team_id=current.team_id):
        raise ApprovalNotVisible()
    if (
        approving
        and current.status == Status.PENDING
        and current.deadline_at > timezone.now()
        and current.required_approvals != expected.required_approvals
    ):
        raise ReviewRejected(
            f"Not recorded: this request needs {current.required_approvals} approvals now (a "
            "proposed change raised its quorum meanwhile). Approve again to cast your vote.",
            code=QUORUM_CHANGED,
        )
    return rerouted
