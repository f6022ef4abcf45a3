"""What reviewers do to a request besides the terminal transition itself.

Quorum votes, escalation, comments, claims and presence. Status still changes only through the
state machine in approvals.services: the vote that completes a quorum calls
`approval_request_approve`, whose compare-and-set `_transition` decides any race.

"Nobody approves a request they submitted": agents submit requests, so a reviewer who operates
the submitting agent (`Agent.operators`) may comment, claim, escalate and deny, but not approve
or vote to approve. `check_approval_request_approve` is the one place that enforces it, for
the pages, the reviewer API and Slack alike, and likewise the confirmation naming the tool that
a high- or critical-impact approval needs (approvals.services.confirmation).
"""

# long: every reviewer action (votes, answers, escalation, claims, presence) checks access the
# same way before calling the state machine; kept together so the checks cannot drift apart.

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import services
from approvals.access import check_approval_access, reviewer_may_see
from approvals.audit import AuditAction, audit_record
from approvals.events import PresenceChanged, RequestChanged, RequestRerouted
from approvals.exceptions import (  # noqa: F401 (OWN_AGENT, CONFLICT_CODES: callers import them here)
    CONFLICT_CODES,
    OWN_AGENT,
    ApprovalNotVisible,
    ClaimConflict,
    ReviewRejected,
    TransitionConflict,
)
from approvals.models import (
    ActorType,
    ApprovalClaim,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalVote,
    Kind,
    ReviewerPresence,
    Status,
    Team,
)
from approvals.policies.changes import (
    ChangeRouting,
    change_approvers_counted,
    change_required_approvals,
    change_routing_judge,
)
from approvals.reassign import approval_request_reassign
from approvals.selectors import approval_lock, presence_stale_before
from console.events import emit
from console.hot_statements import runs_again_if_prepared_stale

# ReviewRejected code: approving what is a question (it is answered instead).
IS_QUESTION = "is_question"


def reviewer_operates_agent(*, approval: ApprovalRequest, reviewer: Any) -> bool:
    """Whether `reviewer` runs or owns the agent that submitted `approval` (so may not approve)."""
    if reviewer is None or not reviewer.is_authenticated:
        return False
    return approval.agent.operators.filter(pk=reviewer.pk).exists()


def _ensure_may_approve(*, approval: ApprovalRequest, reviewer: Any) -> None:
    check_approval_access(approval=approval, user=reviewer)
    if reviewer_operates_agent(approval=approval, reviewer=reviewer):
        # Staff too: approving your own agent's request is the four-eyes hole this closes.
        raise ReviewRejected(
            "You operate the agent that submitted this request, so another reviewer must "
            "approve it. You may still comment or deny it.",
            code=OWN_AGENT,
        )


def _ensure_pending(approval: ApprovalRequest) -> None:
    """Refuse early when the request is decided or overdue (recording the expiry).

    Call it outside a transaction: a conflict raised inside one would roll the expiry back.
    """
    current = services.approval_request_expire_if_overdue(
        approval=ApprovalRequest.objects.get(pk=approval.pk)
    )
    if current.status != Status.PENDING:
        raise TransitionConflict(current_status=current.status)


def _note_event(
    *, approval: ApprovalRequest, kind: str, reviewer: Any, note: str = ""
) -> ApprovalEvent:
    """A history row for something that is not a transition: status stays what it was."""
    return ApprovalEvent.objects.create(
        approval_id=approval.pk,
        kind=kind,
        from_status=approval.status,
        to_status=approval.status,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=note,
    )


def _canonical(arguments: dict[str, Any] | None) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def approval_arguments_check(*, approval: ApprovalRequest, arguments: Any) -> dict[str, Any]:
    """Arguments a reviewer wants the agent to run instead: a JSON object, valid for the tool.

    When the agent sent the tool's JSON Schema, changed arguments must satisfy it too: a
    reviewer's edit must not hand the tool something it cannot take.
    """
    if not isinstance(arguments, dict):
        raise ReviewRejected("The arguments must be a JSON object.", param="arguments")
    problems = services.approval_arguments_validate(approval=approval, arguments=arguments)
    if problems:
        raise ReviewRejected(
            f"The arguments do not fit the tool's schema: {'; '.join(problems)}",
            param="arguments",
        )
    return arguments


def approval_arguments_parse(*, approval: ApprovalRequest, text: str) -> dict[str, Any]:
    """Arguments typed into the editor: JSON syntax first, then `approval_arguments_check`."""
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReviewRejected(
            f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
            param="arguments",
        ) from None
    return approval_arguments_check(approval=approval, arguments=arguments)


@dataclass(frozen=True)
class ApproveOutcome:
    approval: ApprovalRequest
    votes: int  # counted votes for the same arguments, including this one
    required: int
    # Changed arguments the policy routes beyond these approvals: recorded as a proposal, and
    # the request handed to the team and quorum they need (see check_approval_request_approve).
    proposal: ChangeRouting | None = None
    routed_from_team_id: int | None = None

    @property
    def decided(self) -> bool:
        return self.approval.status == Status.APPROVED

    @property
    def moved(self) -> bool:
        """The proposal handed the request to another team."""
        return self.proposal is not None and self.proposal.team_id != self.routed_from_team_id


# long: one locked vote count: checks, count, decide or record and move, in one transaction's order
@runs_again_if_prepared_stale  # checks, then one transaction (compare-and-set), then nothing
def check_approval_request_approve(
    *,
    approval: ApprovalRequest,
    reviewer: User,
    note: str = "",
    arguments: dict[str, Any] | None = None,
    confirmed: str | None = None,
) -> ApproveOutcome:
    """A reviewer approves (optionally with changed arguments); the last needed vote decides.

    `confirmed`: the tool name the reviewer confirmed, None when the surface asked nothing. A
    high- or critical-impact request is not approved, nor a vote recorded, without it
    (approvals.services.confirmation: ReviewRejected `confirmation_required`), whatever the
    surface: the page, the reviewer API, Slack, bulk approve.

    The request row is locked while the vote is counted: two reviewers casting the last two
    votes at once would otherwise each count the other's vote as missing and neither decide.

    Changed arguments are judged by the policy as a new request with them would be
    (approvals.policies.changes), in the same transaction: denied, they are refused, naming the
    rule (ReviewRejected `policy_denies`). Routed to a team or a quorum these approvals do not
    satisfy, they are not approved: this approval is recorded as a vote for them (a proposal
    the decision page and the API show), and the request moves to that team, needing that
    many approvals, where its reviewers may approve exactly that change. Only votes of
    reviewers entitled to decide the request as routed now count, so a vote cast before a
    move never stands in for the new team's.
    """
    _ensure_may_approve(approval=approval, reviewer=reviewer)
    if approval.kind == Kind.QUESTION:
        raise ReviewRejected(
            "This is a question: answer it (or decline to answer), there is nothing to approve.",
            code=IS_QUESTION,
        )
    services.approval_confirmation_check(approval=approval, confirmed=confirmed)
    if arguments is not None:
        arguments = approval_arguments_check(approval=approval, arguments=arguments)
        if arguments == approval.arguments:
            arguments = None
    if arguments is None and approval.required_approvals <= 1:
        # The common case, kept to one transition: the compare-and-set refuses it if a proposal
        # moved the request or raised its quorum since it was read.
        decided = services.approval_request_approve(approval=approval, reviewer=reviewer, note=note)
        return ApproveOutcome(approval=decided, votes=1, required=1)
    _ensure_pending(approval)
    with transaction.atomic():
        # The judgment first: it locks the run's and the agent's rows, which creation and halts
        # lock before any request's row, so taking them in that order cannot deadlock.
        routing = None
        if arguments is not None:
            routing = change_routing_judge(approval=approval, arguments=arguments)
            if routing.refused:
                raise ReviewRejected(
                    routing.refusal_message(), code=services.POLICY_DENIES, param="arguments"
                )
        locked = approval_lock(approval.pk)
        assert locked is not None  # requests are never deleted
        if locked.status != Status.PENDING:
            raise TransitionConflict(current_status=locked.status)
        if locked.team_id != approval.team_id and not reviewer_may_see(
            user=reviewer, team_id=locked.team_id
        ):
            raise ApprovalNotVisible()  # moved to a team this reviewer is not in, meanwhile
        votes = list(locked.votes.select_related("reviewer"))
        if any(vote.reviewer_id == reviewer.pk for vote in votes):
            raise _already_voted()
        endorsers = [
            vote.reviewer for vote in votes if _canonical(vote.arguments) == _canonical(arguments)
        ] + [reviewer]
        counted = len(
            change_approvers_counted(approval=locked, routing=routing, approvers=endorsers)
        )
        required = change_required_approvals(approval=locked, routing=routing)
        if counted >= required:
            if required > 1:
                ApprovalVote.objects.create(
                    approval=locked, reviewer=reviewer, arguments=arguments, note=note
                )
            decided = services.approval_request_approve(
                approval=locked, reviewer=reviewer, note=note, arguments=arguments, routing=routing
            )
            return ApproveOutcome(approval=decided, votes=counted, required=required)
        try:
            with transaction.atomic():
                ApprovalVote.objects.create(
                    approval=locked, reviewer=reviewer, arguments=arguments, note=note
                )
        except IntegrityError:
            raise _already_voted() from None
        previous_team_id = locked.team_id
        proposal = routing if routing is not None and routing.routes else None
        moved = proposal is not None and (
            proposal.team_id != locked.team_id or required != locked.required_approvals
        )
        if moved:
            assert proposal is not None
            locked = _request_reroute_for_change(
                approval=locked, reviewer=reviewer, routing=proposal, required=required
            )
            counted = len(
                change_approvers_counted(approval=locked, routing=routing, approvers=endorsers)
            )
        what = "with changed arguments" if arguments is not None else "as submitted"
        audit_record(
            action=AuditAction.VOTE_CAST,
            actor=reviewer,
            target=locked,
            after={
                "votes": counted,
                "required": required,
                "arguments": arguments,
                "note": note,
            },
        )
        _note_event(
            approval=locked,
            kind="approval_vote",
            reviewer=reviewer,
            note=f"Approved {what} ({counted} of {required}). {note}".strip(),
        )
        if not moved:  # a move tells reviewers itself
            emit(RequestChanged(approval_id=locked.pk))
    return ApproveOutcome(
        approval=locked,
        votes=counted,
        required=required,
        proposal=proposal,
        routed_from_team_id=previous_team_id,
    )


def _already_voted() -> ReviewRejected:
    return ReviewRejected(
        "You already approved this request; it needs other reviewers now.", code="already_voted"
    )


def _request_reroute_for_change(
    *, approval: ApprovalRequest, reviewer: User, routing: ChangeRouting, required: int
) -> ApprovalRequest:
    """Hand the (locked) request to the team and quorum a proposed change needs.

    Like an escalation, with the policy's reason: the request leaves the editor's queue if
    they are not in that team, claims end, and the team hears of it. The quorum only ever
    rises: the submitted arguments never need fewer approvals than before.
    """
    before = {"team_id": approval.team_id, "required_approvals": approval.required_approvals}
    approval_request_reassign(locked=approval, team_id=routing.team_id, required_approvals=required)
    moved = ApprovalRequest.objects.select_related("team").get(pk=approval.pk)
    audit_record(
        action=AuditAction.REQUEST_ESCALATED,
        actor=reviewer,
        target=moved,
        before=before,
        after={
            "team_id": moved.team_id,
            "team": routing.team_name,
            "required_approvals": required,
            "reason": "proposed changed arguments",
            "rule_name": routing.verdict.rule.name if routing.verdict.rule else "",
        },
    )
    _note_event(
        approval=moved,
        kind="change_proposed",
        reviewer=reviewer,
        note=f"Proposed changed arguments that need {routing.describe()}: the request is now "
        f"with {moved.team.name if moved.team else 'staff'} and needs {required} "
        f"approval{'s' if required != 1 else ''}{_by_rule(routing)}.",
    )
    emit(RequestRerouted(approval_id=moved.pk))
    return moved


def _by_rule(routing: ChangeRouting) -> str:
    # The rule's title, an operator's words; not the verdict's reason, which quotes the
    # agent's values and would read as the console's in the request's history.
    rule = routing.verdict.rule
    return f", by {rule.title}" if rule is not None else ""


def approval_answer_check(*, approval: ApprovalRequest, answer: Any) -> Any:
    """A reviewer's answer to a question, valid against the question's answer_schema."""
    problems = services.arguments_schema_errors(schema=approval.answer_schema, arguments=answer)
    if problems:
        # "$.field: message": the JSON path names the field the reviewer got wrong.
        raise ReviewRejected(
            f"The answer does not fit the question's schema: {'; '.join(problems)}",
            param="answer",
        )
    return answer


def check_approval_request_answer(
    *, approval: ApprovalRequest, reviewer: User, answer: Any, note: str = ""
) -> ApprovalRequest:
    """A reviewer answers a question: access as for approving (nobody answers the question of
    an agent they operate), then the answer checked against the schema, then one transition."""
    _ensure_may_approve(approval=approval, reviewer=reviewer)
    if approval.kind != Kind.QUESTION:
        raise ReviewRejected(
            "This is an approval request, not a question: approve or deny it.", param="answer"
        )
    answer = approval_answer_check(approval=approval, answer=answer)
    return services.approval_request_answer(
        approval=approval, reviewer=reviewer, answer=answer, note=note
    )


def check_approval_request_deny(
    *, approval: ApprovalRequest, reviewer: User, reason: str
) -> ApprovalRequest:
    """One deny ends the request, whatever votes it had."""
    check_approval_access(approval=approval, user=reviewer)
    return services.approval_request_deny(approval=approval, reviewer=reviewer, reason=reason)


@runs_again_if_prepared_stale  # checks, then one compare-and-set transaction, then a read
def check_approval_request_escalate(
    *, approval: ApprovalRequest, reviewer: User, team: Team, note: str
) -> ApprovalRequest:
    """Hand the request to another team with a note; it leaves this team's queue."""
    check_approval_access(approval=approval, user=reviewer)
    note = note.strip()
    if not note:
        raise ReviewRejected("Say why you escalate: the other team reads it first.", param="note")
    if team.pk == approval.team_id:
        raise ReviewRejected("The request is already with that team.", param="team")
    previous_team_id = approval.team_id
    _ensure_pending(approval)
    with transaction.atomic():
        # Compare-and-set on status and team: a decision or another escalation that landed
        # first wins, and this one changes nothing.
        current = approval_lock(approval.pk)
        assert current is not None  # requests are never deleted
        if current.status == Status.PENDING and current.team_id != previous_team_id:
            raise ReviewRejected(
                "Someone escalated this request meanwhile.", code="already_escalated"
            )
        if current.status != Status.PENDING or current.deadline_at <= timezone.now():
            raise TransitionConflict(current_status=current.status)
        approval_request_reassign(locked=current, team_id=team.pk)
        audit_record(
            action=AuditAction.REQUEST_ESCALATED,
            actor=reviewer,
            target=approval,
            before={"team_id": previous_team_id},
            after={"team_id": team.pk, "team": team.name, "note": note},
        )
        _note_event(
            approval=approval,
            kind="escalated",
            reviewer=reviewer,
            note=f"To {team.name}: {note}",
        )
    return ApprovalRequest.objects.get(pk=approval.pk)


def check_approval_request_comment(
    *, approval: ApprovalRequest, reviewer: User, note: str
) -> ApprovalEvent:
    """A note in the request's history without deciding; allowed after the decision too."""
    check_approval_access(approval=approval, user=reviewer)
    note = note.strip()
    if not note:
        raise ReviewRejected("A comment needs some text.", param="note")
    with transaction.atomic():
        event = _note_event(approval=approval, kind="commented", reviewer=reviewer, note=note)
        audit_record(
            action=AuditAction.COMMENT_ADDED, actor=reviewer, target=approval, after={"note": note}
        )
        emit(RequestChanged(approval_id=approval.pk))
    return event


def approval_claim_take(
    *, approval: ApprovalRequest, reviewer: User, take_over: bool = False
) -> ApprovalClaim:
    """Claim a request for APPROVAL_CLAIM_SECONDS.

    Another reviewer's live claim needs `take_over`: taking over is deliberate, and recorded.
    """
    check_approval_access(approval=approval, user=reviewer)
    _ensure_pending(approval)
    now = timezone.now()
    with transaction.atomic():
        ApprovalRequest.objects.select_for_update().filter(pk=approval.pk).first()
        current = ApprovalClaim.objects.filter(approval_id=approval.pk).first()
        holder_is_other = current is not None and current.reviewer_id != reviewer.pk
        if holder_is_other and current.expires_at > now and not take_over:  # type: ignore[union-attr]
            raise ClaimConflict(holder=current.reviewer.get_username())  # type: ignore[union-attr]
        claim, _ = ApprovalClaim.objects.update_or_create(
            approval_id=approval.pk,
            defaults={
                "reviewer": reviewer,
                "claimed_at": now,
                "expires_at": now + timedelta(seconds=settings.APPROVAL_CLAIM_SECONDS),
            },
        )
        kind = "claim_taken_over" if holder_is_other and take_over else "claimed"
        _note_event(approval=approval, kind=kind, reviewer=reviewer)
        audit_record(
            action=AuditAction.REQUEST_CLAIMED,
            actor=reviewer,
            target=approval,
            before={"holder": current.reviewer.get_username()} if current is not None else None,
            after={"holder": reviewer.get_username(), "expires_at": claim.expires_at},
        )
        emit(RequestChanged(approval_id=approval.pk))
    return claim


def approval_claim_release(*, approval: ApprovalRequest, reviewer: User) -> None:
    check_approval_access(approval=approval, user=reviewer)
    with transaction.atomic():
        released = ApprovalClaim.objects.filter(
            approval_id=approval.pk, reviewer_id=reviewer.pk
        ).delete()[0]
        if released:
            _note_event(approval=approval, kind="claim_released", reviewer=reviewer)
            audit_record(
                action=AuditAction.REQUEST_UNCLAIMED,
                actor=reviewer,
                target=approval,
                before={"holder": reviewer.get_username()},
            )
            emit(RequestChanged(approval_id=approval.pk))


def presence_enter(*, approval_id: int, user_id: int, channel_name: str) -> None:
    ReviewerPresence.objects.update_or_create(
        channel_name=channel_name,
        defaults={"approval_id": approval_id, "reviewer_id": user_id, "seen_at": timezone.now()},
    )
    emit(PresenceChanged(approval_id=approval_id))


def presence_refresh(
    *, approval_id: int, user_id: int, channel_name: str, now: datetime | None = None
) -> None:
    """The page's heartbeat: still looking. Re-enters if a sweep removed the row meanwhile."""
    now = now or timezone.now()
    presence = ReviewerPresence.objects.filter(channel_name=channel_name)
    # Late pings (a paused tab): the row was already hidden, so others must see it come back.
    was_hidden = presence.filter(seen_at__lte=presence_stale_before(now=now)).exists()
    if not presence.update(seen_at=now):
        presence_enter(approval_id=approval_id, user_id=user_id, channel_name=channel_name)
    elif was_hidden:
        emit(PresenceChanged(approval_id=approval_id))


def presences_expire(*, now: datetime | None = None) -> int:
    """Remove presence whose heartbeat stopped: a server process died without disconnecting."""
    stale_before = presence_stale_before(now=now or timezone.now())
    with transaction.atomic():
        stale = ReviewerPresence.objects.filter(seen_at__lte=stale_before)
        approval_ids = set(stale.values_list("approval_id", flat=True))
        removed = stale.delete()[0]
        for approval_id in sorted(approval_ids):
            emit(PresenceChanged(approval_id=approval_id))
    return removed


def presence_leave(*, channel_name: str) -> None:
    presence = ReviewerPresence.objects.filter(channel_name=channel_name).first()
    if presence is None:
        return
    presence.delete()
    emit(PresenceChanged(approval_id=presence.approval_id))
