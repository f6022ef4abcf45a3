"""Who reacts to the domain events of approvals.events and agents.events.

The one place that lists the side effects of a change: services emit events and import none of
these. Connected once, from ApprovalsConfig.ready(). Each handler only translates an event into
a call of the module that does the work (realtime, notifications, AAP webhooks, halts).
"""

import logging

from agents.aap import webhooks
from agents.events import RunHalted, ToolResultsTraced
from agents.models import Agent
from approvals import realtime
from approvals.escalations import step_recipients
from approvals.events import (
    AgentHalted,
    DenialCounted,
    EscalationStepFired,
    OutcomeReported,
    PresenceChanged,
    RequestChanged,
    RequestRerouted,
    RequestResolved,
    RequestsCreated,
)
from approvals.exceptions import TransitionConflict
from approvals.models import ApprovalRequest, EscalationStep, OutcomeStatus, Source, Status
from approvals.notifications import (
    escalation_reason,
    notifications_create,
    notifications_on_outcome_failed,
    notifications_on_resolved,
    notifications_on_submitted,
    notifications_on_submitted_many,
)
from approvals.policies.halts import agent_circuit_breaker_check
from approvals.selectors import approvals_pending_for_run
from approvals.services import (
    approval_outcomes_from_trace,
    approval_request_cancel_for_halt,
    approval_request_system_deny,
)
from approvals.tracing import span_outcome, span_waited
from console import tracing
from console.events import Phase, subscribe

logger = logging.getLogger(__name__)


# --- realtime: after commit ---


def push_created(event: RequestsCreated) -> None:
    if not event.reviewers_told_by_caller:
        realtime.publish_approvals_created(event.approval_ids)


def wake_waiting_agents(event: RequestResolved) -> None:
    # First among a decision's after-commit work (subscribed first, and the transition emits
    # before anything else of its transaction registers): waiting agents hear before reviewers.
    realtime.publish_resolved(code=event.code, status=event.status, agent_view=event.agent_view)


def push_resolved(event: RequestResolved) -> None:
    realtime.publish_approval_changed(event.approval_id)


def push_changed(event: RequestChanged) -> None:
    realtime.publish_approval_changed(event.approval_id, previous_team_id=event.previous_team_id)


def push_outcome(event: OutcomeReported) -> None:
    realtime.publish_approval_changed(event.approval_id)


def push_presence(event: PresenceChanged) -> None:
    realtime.publish_presence(event.approval_id)


# --- notifications and AAP webhooks: outbox rows, in the emitter's transaction ---


def notify_created(event: RequestsCreated) -> None:
    # Only a request held for a team pages anyone: one decided by policy pages nobody.
    if event.routed_ids:
        held = list(ApprovalRequest.objects.filter(pk__in=event.routed_ids).order_by("pk"))
        notifications_on_submitted_many(approvals=held)
    # A brand-new request has no Slack messages to update; AAP receivers hear of one decided.
    for approval_id, decided_at in event.aap_decided_at.items():
        webhooks.notification_record(approval_id=approval_id, decided_at=decided_at)


def notify_resolved(event: RequestResolved) -> None:
    notifications_on_resolved(approval_id=event.approval_id)
    if event.notify_agent and event.source == Source.AAP:
        # Same transaction as the decision: the outcome and its webhook event commit together
        # or not at all. (A request's source never changes: no read needed to know that a
        # native request has no AAP receiver.)
        webhooks.notification_record(approval_id=event.approval_id, decided_at=event.decided_at)


def notify_rerouted(event: RequestRerouted) -> None:
    notifications_on_submitted(approval=ApprovalRequest.objects.get(pk=event.approval_id))


def notify_outcome_failed(event: OutcomeReported) -> None:
    # Only a failure is news for the approvers; a success, a call never made or the console's
    # own "not reported" mark tells nobody.
    if event.status == OutcomeStatus.FAILED:
        notifications_on_outcome_failed(approval_id=event.approval_id)


def notify_escalation_step(event: EscalationStepFired) -> None:
    step = EscalationStep.objects.get(pk=event.step_id)
    notifications_create(
        approval=ApprovalRequest.objects.get(pk=event.approval_id),
        recipients=step_recipients(step),
        channels=step.channels,
        reason=escalation_reason(step.pk),
        now=event.fired_at,
        urgent=event.is_last,
    )


# --- policy and runs: in the emitter's transaction ---


def circuit_breaker_check(event: DenialCounted) -> None:
    """Trip the circuit breaker if this denial was one too many. The denial stands regardless."""
    try:
        agent_circuit_breaker_check(agent_id=event.agent_id)
    except Exception:
        logger.exception("circuit breaker check failed for agent %s", event.agent_id)


def deny_pending_of_halted_run(event: RunHalted) -> None:
    # A halted run must not act, whatever was already waiting for a reviewer.
    for approval in approvals_pending_for_run(run_id=event.run_id):
        approval_request_system_deny(approval=approval, reason=event.reason)


def outcomes_from_trace(event: ToolResultsTraced) -> None:
    # In the appending transaction: the trace and the outcomes it carries commit together.
    agent = Agent.objects.get(pk=event.agent_id)
    approval_outcomes_from_trace(agent=agent, results=event.results)


def cancel_pending_of_halted_agent(event: AgentHalted) -> None:
    pending = ApprovalRequest.objects.filter(agent_id=event.agent_id, status=Status.PENDING).only(
        "pk", "status", "deadline_at"
    )
    for approval in pending:
        try:
            approval_request_cancel_for_halt(
                approval=approval, halted_by=event.halted_by, note=event.note
            )
        except TransitionConflict:
            continue  # decided or expired meanwhile: that outcome stands


# --- OpenTelemetry spans: after commit, only when tracing is on (console.tracing) ---


def trace_resolved(event: RequestResolved) -> None:
    if tracing.enabled():
        span_waited(approval_id=event.approval_id)


def trace_outcome(event: OutcomeReported) -> None:
    if tracing.enabled():
        span_outcome(approval_id=event.approval_id)


def connect() -> None:
    after, now = Phase.AFTER_COMMIT, Phase.IN_TRANSACTION
    subscribe(RequestsCreated, push_created, phase=after)
    subscribe(RequestResolved, wake_waiting_agents, phase=after)
    subscribe(RequestResolved, push_resolved, phase=after)
    subscribe(RequestChanged, push_changed, phase=after)
    subscribe(PresenceChanged, push_presence, phase=after)
    subscribe(OutcomeReported, push_outcome, phase=after)
    subscribe(RequestsCreated, notify_created, phase=now)
    subscribe(RequestResolved, notify_resolved, phase=now)
    subscribe(RequestRerouted, notify_rerouted, phase=now)
    subscribe(EscalationStepFired, notify_escalation_step, phase=now)
    subscribe(OutcomeReported, notify_outcome_failed, phase=now)
    subscribe(DenialCounted, circuit_breaker_check, phase=now)
    subscribe(RunHalted, deny_pending_of_halted_run, phase=now)
    subscribe(AgentHalted, cancel_pending_of_halted_agent, phase=now)
    subscribe(ToolResultsTraced, outcomes_from_trace, phase=now)
    subscribe(RequestResolved, trace_resolved, phase=after)
    subscribe(OutcomeReported, trace_outcome, phase=after)
