"""Halting and resuming agents: the kill switch and the circuit breaker.

A halted agent's pending requests are cancelled and its new requests are denied with the halt's
reason (see evaluation.policy_decide) until someone resumes it. Every halt and resume is a row
saying who and why.
"""

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from agents.exceptions import RunClosed
from agents.models import Agent, AgentHalt, Run, RunStatus
from agents.services import run_close
from approvals.agent_text import agent_text_in_quotes
from approvals.audit import AuditAction, audit_record
from approvals.events import AgentHalted
from approvals.models import ApprovalRequest, Status
from approvals.policies.models import CircuitBreaker
from console.events import emit


class NotHalted(Exception):
    """Resume was asked for an agent that is not halted."""


def agent_active_halt(*, agent: Agent) -> AgentHalt | None:
    return AgentHalt.objects.filter(agent=agent, resumed_at__isnull=True).first()


def agent_halt(
    *, agent: Agent, reason: str, halted_by: User | None, now: datetime | None = None
) -> AgentHalt:
    """Halt an agent and cancel its pending requests. Halting a halted agent changes nothing."""
    now = now or timezone.now()
    reason = reason.strip() or "No reason given."
    with transaction.atomic():
        # The same lock policy_decide takes: a request being created right now either sees
        # this halt, or is committed before it and is cancelled below. None slips between.
        Agent.objects.select_for_update().filter(pk=agent.pk).values_list("pk").first()
        existing = agent_active_halt(agent=agent)
        if existing is not None:
            return existing  # already halted: that halt stands
        halt = AgentHalt.objects.create(
            agent=agent, reason=reason, halted_by=halted_by, halted_at=now
        )
        audit_record(
            action=AuditAction.AGENT_HALTED,
            actor=halted_by,
            target=agent,
            after={"halted": True, "reason": reason, "halt_id": halt.pk},
        )
        who = halted_by.get_username() if halted_by else "the console"
        # The state machine cancels its pending requests (approvals.subscribers), in this
        # transaction: the policy layer does not call the services above it.
        emit(
            AgentHalted(
                agent_id=agent.pk,
                halted_by=halted_by,
                note=f"Cancelled: the agent was halted by {who} ({reason}).",
            )
        )
    return halt


def agent_resume(*, agent: Agent, resumed_by: User, reason: str) -> AgentHalt:
    """Let a halted agent's requests through to the policy again."""
    now = timezone.now()
    with transaction.atomic():
        halt = (
            AgentHalt.objects.select_for_update()
            .filter(agent=agent, resumed_at__isnull=True)
            .first()
        )
        if halt is None:
            raise NotHalted(f"Agent {agent_text_in_quotes(agent.name)} is not halted.")
        halt.resumed_at = now
        halt.resumed_by = resumed_by
        halt.resume_reason = reason.strip() or "No reason given."
        halt.save(update_fields=["resumed_at", "resumed_by", "resume_reason"])
        audit_record(
            action=AuditAction.AGENT_RESUMED,
            actor=resumed_by,
            target=agent,
            before={"halted": True, "halt_reason": halt.reason},
            after={"halted": False, "reason": halt.resume_reason, "halt_id": halt.pk},
        )
    return halt


def agent_circuit_breaker_check(*, agent_id: int, now: datetime | None = None) -> AgentHalt | None:
    """Halt the agent if a circuit breaker's denial count is reached. Returns the new halt.

    Denials before the agent's last resume do not count: resuming gives a clean slate.
    """
    now = now or timezone.now()
    if AgentHalt.objects.filter(agent_id=agent_id, resumed_at__isnull=True).exists():
        return None
    last_resume = AgentHalt.objects.filter(agent_id=agent_id).aggregate(last=Max("resumed_at"))[
        "last"
    ]
    for breaker in CircuitBreaker.objects.filter(enabled=True):
        if breaker.agent_id is not None and breaker.agent_id != agent_id:
            continue
        since = now - timedelta(seconds=breaker.window_seconds)
        if last_resume is not None and last_resume > since:
            since = last_resume
        # What the agent was refused for: by a reviewer, a rule or a budget. Denials that
        # follow from a halt or a closed run say nothing new about the agent's behaviour.
        denials = (
            ApprovalRequest.objects.filter(
                agent_id=agent_id, status=Status.DENIED, decided_at__gte=since
            )
            .filter(
                Q(decision__reviewer__isnull=False)
                | Q(policy_evaluation__decided_by__in=["rule", "budget"])
            )
            .count()
        )
        if denials >= breaker.max_denials:
            agent = Agent.objects.get(pk=agent_id)
            return agent_halt(
                agent=agent,
                halted_by=None,
                reason=f"circuit breaker “{breaker.name}”: {denials} denials within "
                f"{breaker.window_seconds}s",
                now=now,
            )
    return None


def run_halt(*, run: Run, halted_by: User, reason: str) -> Run:
    """Halt one run from the console: its pending requests are denied, new ones refused.

    A halted run is closed for good (the native API has no reopening); the agent starts a new
    run, which the policy treats afresh. Who halted it and why go into the run's close reason.
    """
    reason = reason.strip() or "No reason given."
    try:
        return run_close(
            run=run,
            status=RunStatus.HALTED,
            reason=f"Halted by {halted_by.get_username()} from the console: {reason}",
            actor=halted_by,
        )
    except RunClosed:
        return Run.objects.get(pk=run.pk)  # already closed: that outcome stands
