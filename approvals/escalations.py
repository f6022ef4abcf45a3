"""Escalation chains: who hears about a request still pending, and when.

A step is due at `created_at + after_minutes`, clamped into the request's life so that it fires
before the deadline, never after: no later than ESCALATION_DEADLINE_MARGIN_SECONDS before the
deadline (or at creation, for a window shorter than the margin), and never before the step
ahead of it. Firing writes an EscalationFiring row, unique per (request, step), in the same
transaction as its event and its outbox rows: beat may run late, twice or concurrently and each
step still fires exactly once; after downtime, every step that came due fires once, in order.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.access import reviewer_may_see
from approvals.audit import AuditAction, audit_record
from approvals.events import EscalationStepFired, RequestChanged
from approvals.exceptions import EscalationUnavailable, NotAllowed, TransitionConflict
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    EscalationTrigger,
    Status,
)
from approvals.reassign import approval_request_reassign
from approvals.selectors import approval_lock
from console.events import emit
from console.hot_statements import runs_again_if_prepared_stale


def default_chain() -> EscalationChain | None:
    if not settings.ESCALATION_DEFAULT_CHAIN:
        return None
    return EscalationChain.objects.filter(name=settings.ESCALATION_DEFAULT_CHAIN).first()


def chain_for(approval: ApprovalRequest) -> EscalationChain | None:
    """The policy's chain, else the default one."""
    if approval.escalation_chain_id is not None:
        return approval.escalation_chain
    return default_chain()


def escalation_next_step(*, approval: ApprovalRequest) -> EscalationStep | None:
    """The step that escalating by hand would fire now, or None: no chain, or every step fired."""
    chain = chain_for(approval)
    if chain is None:
        return None
    fired = EscalationFiring.objects.filter(approval=approval).values_list("step_id", flat=True)
    return (
        chain.steps.exclude(pk__in=fired)
        .select_related("notify_team", "notify_user", "reassign_to")
        .order_by("position")
        .first()
    )


def step_schedule(
    *, approval: ApprovalRequest, steps: Sequence[EscalationStep]
) -> list[tuple[EscalationStep, datetime]]:
    """Each step with the moment it is due, in firing order (see the module docstring)."""
    latest = approval.deadline_at - timedelta(seconds=settings.ESCALATION_DEADLINE_MARGIN_SECONDS)
    previous = approval.created_at
    schedule = []
    for step in sorted(steps, key=lambda s: s.position):
        due = approval.created_at + timedelta(minutes=step.after_minutes)
        due = max(min(due, latest), previous)
        schedule.append((step, due))
        previous = due
    return schedule


def escalations_fire_due(*, now: datetime | None = None, limit: int = 2000) -> int:
    """Fire every step that is due for pending requests. Returns how many fired. Idempotent."""
    now = now or timezone.now()
    fallback = default_chain()
    candidates = ApprovalRequest.objects.filter(status=Status.PENDING, deadline_at__gt=now)
    # A live claim acknowledges the request: its chain waits, and resumes (every step due by
    # then) once the claim is released or lapses. Escalating by hand is not held back.
    candidates = candidates.exclude(claim__expires_at__gt=now)
    if fallback is None:
        candidates = candidates.filter(escalation_chain__isnull=False)
    steps_by_chain: dict[int, list[EscalationStep]] = {}
    fired = 0
    for approval in candidates.prefetch_related("escalation_firings").order_by("deadline_at")[
        :limit
    ]:
        chain_id = approval.escalation_chain_id or (fallback.pk if fallback else None)
        if chain_id is None:
            continue
        if chain_id not in steps_by_chain:
            steps_by_chain[chain_id] = list(
                EscalationStep.objects.filter(chain_id=chain_id).select_related(
                    "notify_team", "notify_user", "reassign_to"
                )
            )
        steps = steps_by_chain[chain_id]
        done = {firing.step_id for firing in approval.escalation_firings.all()}
        for step, due in step_schedule(approval=approval, steps=steps):
            if due > now:
                break
            if step.pk in done:
                continue
            if _fire(
                approval=approval,
                step=step,
                due_at=due,
                now=now,
                is_last=step is steps[-1],
                trigger=EscalationTrigger.SCHEDULE,
            ):
                fired += 1
    return fired


def approval_request_escalate_next_step(
    *,
    approval: ApprovalRequest,
    actor: User,
    note: str = "",
    now: datetime | None = None,
) -> EscalationFiring:
    """Escalate by hand: fire the next step of the request's chain now, with the actor's note."""
    now = now or timezone.now()
    if not reviewer_may_see(user=actor, team_id=approval.team_id):
        raise NotAllowed("You may not act on this request.")
    chain = chain_for(approval)
    if chain is None:
        raise EscalationUnavailable("No escalation chain applies to this request.")
    steps = list(chain.steps.select_related("notify_team", "notify_user", "reassign_to"))
    # Beat may fire the step we chose between our read and our write; then take the next one.
    for _ in range(len(steps) + 1):
        done = set(
            EscalationFiring.objects.filter(approval=approval).values_list("step_id", flat=True)
        )
        remaining = [step for step in steps if step.pk not in done]
        if not remaining:
            raise EscalationUnavailable("Every escalation step has already fired.")
        step = remaining[0]
        firing = _fire(
            approval=approval,
            step=step,
            due_at=now,
            now=now,
            is_last=step is steps[-1],
            trigger=EscalationTrigger.MANUAL,
            actor=actor,
            note=note.strip(),
        )
        if firing is not None:
            return firing
        current = ApprovalRequest.objects.get(pk=approval.pk)
        if current.status != Status.PENDING or current.deadline_at <= now:
            raise TransitionConflict(current_status=current.status)
    raise EscalationUnavailable("Every escalation step has already fired.")


@runs_again_if_prepared_stale  # one transaction; a step fired meanwhile is not fired again
def _fire(
    *,
    approval: ApprovalRequest,
    step: EscalationStep,
    due_at: datetime,
    now: datetime,
    is_last: bool,
    trigger: str,
    actor: User | None = None,
    note: str = "",
) -> EscalationFiring | None:
    with transaction.atomic():
        # The row lock orders us against decisions and other escalations of this request.
        locked = approval_lock(approval.pk)
        if locked is None or locked.status != Status.PENDING or locked.deadline_at <= now:
            return None
        try:
            with transaction.atomic():
                firing = EscalationFiring.objects.create(
                    approval=locked,
                    step=step,
                    trigger=trigger,
                    actor=actor,
                    note=note,
                    due_at=due_at,
                    fired_at=now,
                )
        except IntegrityError:
            return None  # fired already, by another beat or by hand
        team_before = locked.team_id
        moved = step.reassign_to_id is not None and step.reassign_to_id != locked.team_id
        if moved:
            approval_request_reassign(locked=locked, team_id=step.reassign_to_id)
        _fired_record(
            locked=locked,
            step=step,
            team_before=team_before,
            due_at=due_at,
            trigger=trigger,
            actor=actor,
            note=note,
        )
        emit(
            EscalationStepFired(
                approval_id=locked.pk, step_id=step.pk, fired_at=now, is_last=is_last
            )
        )
        if not moved:  # a move tells reviewers itself
            emit(RequestChanged(approval_id=locked.pk))
    return firing


def _fired_record(
    *,
    locked: ApprovalRequest,
    step: EscalationStep,
    team_before: int | None,
    due_at: datetime,
    trigger: str,
    actor: User | None,
    note: str,
) -> None:
    """The firing in the audit trail and the request's history, in the firing's transaction."""
    audit_record(
        action=AuditAction.ESCALATION_STEP_FIRED,
        actor=actor,
        target=locked,
        before={"team_id": team_before},
        after={"team_id": locked.team_id},
        context={
            "chain_id": step.chain_id,
            "step_position": step.position,
            "trigger": trigger,
            "due_at": due_at,
            "note": note,
        },
    )
    ApprovalEvent.objects.create(
        approval=locked,
        kind="escalated",
        from_status=Status.PENDING,
        to_status=Status.PENDING,
        actor_type=ActorType.REVIEWER if actor is not None else ActorType.SYSTEM,
        actor_user=actor,
        note=_event_note(step, note),
    )


def step_recipients(step: EscalationStep) -> list[User]:
    """Who a step tells: its user, its team, or else the team it hands the request to."""
    users = get_user_model().objects.select_related("notification_preference")
    recipients: list[User] = []
    if step.notify_user_id is not None:
        recipients.extend(users.filter(pk=step.notify_user_id))
    # A step that only hands the request over tells the team that now owns it.
    team_id = step.notify_team_id or (step.reassign_to_id if step.notify_user_id is None else None)
    if team_id is not None:
        recipients.extend(users.filter(teams=team_id).order_by("pk"))
    return recipients


def _event_note(step: EscalationStep, note: str) -> str:
    targets = [str(target) for target in (step.notify_team, step.notify_user) if target is not None]
    parts = [f"Step {step.position}: notified {', '.join(targets) or 'nobody'}"]
    if step.reassign_to is not None:
        parts.append(f"reassigned to {step.reassign_to}")
    text = "; ".join(parts) + "."
    return f"{text} {note}" if note else text


def expiry_note(*, approval_id: int) -> str:
    """What the agent reads when nobody decided: the deadline passed, and who was asked."""
    firings = EscalationFiring.objects.filter(approval_id=approval_id).count()
    note = "No decision before the deadline."
    if firings:
        note += f" Escalated {firings} time{'s' if firings != 1 else ''}; nobody decided."
    return note
