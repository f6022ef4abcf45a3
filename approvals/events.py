"""What happens to approval requests, as typed events (console.events carries them).

Emitted by the services in approvals.services, approvals.reviews and approvals.escalations;
subscribed to in ApprovalsConfig.ready() (realtime pushes, notifications, AAP webhooks, the
circuit breaker). Plain data: ids and values, never a request row that could be stale.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User


@dataclass(frozen=True)
class RequestsCreated:
    """Requests written in one transaction: held ones wait for a reviewer, the rest were
    born decided by the policy."""

    approval_ids: list[int]
    # Held for a team: its members are told at once. (Held without a team: nobody is paged;
    # the reviewers' live queues hear of it from the realtime subscriber.)
    routed_ids: list[int]
    # Born decided and from AAP, with when: their receivers hear of the outcome.
    aap_decided_at: dict[int, datetime]
    # The caller (batched intake) pushes the new rows to reviewers itself, after answering.
    reviewers_told_by_caller: bool = False


@dataclass(frozen=True)
class RequestResolved:
    """A pending request reached its one terminal status."""

    approval_id: int
    code: str
    status: str
    source: str
    decided_at: datetime
    # The request as the agent API shows it once decided (approvals.agent_view), built in the
    # transaction: the waiting agents are answered with it, nothing is read to push it.
    agent_view: dict[str, Any]
    # False when the agent's AAP receiver is being retired with it: no webhook event.
    notify_agent: bool = True


@dataclass(frozen=True)
class RequestChanged:
    """Something reviewers see changed on a request (a vote, a claim, a comment, its team)."""

    approval_id: int
    # Set when the request moved to another team: the old team's queue drops its row.
    previous_team_id: int | None = None


@dataclass(frozen=True)
class RequestRerouted:
    """A pending request now waits on another team (or quorum): that team is told of it."""

    approval_id: int


@dataclass(frozen=True)
class OutcomeReported:
    """A request's outcome was recorded (by the agent, its run's trace, or the console)."""

    approval_id: int
    status: str
    source: str


@dataclass(frozen=True)
class PresenceChanged:
    """Who is looking at a request changed."""

    approval_id: int


@dataclass(frozen=True)
class DenialCounted:
    """A denial that counts against the agent (a reviewer's or the policy's, not a halt's):
    enough of them trip its circuit breaker. Emitted where the next decision must see a trip."""

    agent_id: int


@dataclass(frozen=True)
class EscalationStepFired:
    """An escalation chain's step fired on a pending request: its recipients are told."""

    approval_id: int
    step_id: int
    fired_at: datetime
    # The chain's last step: its notifications go out as urgent.
    is_last: bool


@dataclass(frozen=True)
class AgentHalted:
    """An agent was halted (by a reviewer, or by its circuit breaker when `halted_by` is None),
    inside the halting transaction: its pending requests are cancelled in it."""

    agent_id: int
    halted_by: User | None
    # What each cancelled request's history says.
    note: str
