"""Approval requests, the decisions on them, and their append-only history.

The fields an agent submitted never change after creation: a reviewer decides on exactly what the
agent will run. Status moves only through approvals.services, one compare-and-set at a time, and
every move appends an ApprovalEvent.
"""

import uuid

from django.conf import settings
from django.db import models

from agents.models import Agent, Run


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({Status.APPROVED, Status.DENIED, Status.EXPIRED, Status.CANCELLED})


class Impact(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


IMPACT_RANK = {Impact.LOW: 0, Impact.MEDIUM: 1, Impact.HIGH: 2, Impact.CRITICAL: 3}


class Team(models.Model):
    """A group of reviewers. Requests are routed to a team; its members see and decide them."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Source(models.TextChoices):
    """Which API the request came through: each has its own rules for what a decision may say."""

    NATIVE = "native", "Native API"
    AAP = "aap", "Agent Approval Protocol"


class ApprovalRequest(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="approval_requests")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.NATIVE)
    # Scoped to the agent: the same key from two agents is two requests.
    idempotency_key = models.CharField(max_length=255)
    # Digest of the parsed submitted fields: a replay with the same key must match it.
    fingerprint = models.CharField(max_length=64)

    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    summary = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    impact = models.CharField(max_length=10, choices=Impact.choices, default=Impact.MEDIUM)
    # As submitted ("30m"), echoed back; timeout_seconds is the window actually granted.
    timeout = models.CharField(max_length=16)
    timeout_seconds = models.PositiveIntegerField()

    # Routing and review requirements (set when the request is created; policies decide them).
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="approval_requests"
    )
    required_approvals = models.PositiveSmallIntegerField(default=1)
    # Why the console held this request for a person, in words the reviewer and agent can read.
    hold_reason = models.TextField(blank=True)

    # Native API: the run this request belongs to, reviewer-facing labels, and the JSON Schema
    # of the tool's arguments that a reviewer's changed arguments must also satisfy.
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.PROTECT, related_name="approval_requests"
    )
    labels = models.JSONField(default=list, blank=True)
    arguments_schema = models.JSONField(null=True, blank=True)

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deadline_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"], name="approval_unique_idempotency_key"
            ),
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True)
                | models.Q(confidence__gte=0, confidence__lte=1),
                name="approval_confidence_between_0_and_1",
            ),
        ]
        indexes = [
            # The expiry sweep and the queue both look for pending requests by deadline.
            models.Index(fields=["status", "deadline_at"], name="approval_status_deadline"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.code})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Decision(models.Model):
    """A terminal outcome with its reasons: who decided (a reviewer, or the system) and why."""

    approval = models.OneToOneField(
        ApprovalRequest, on_delete=models.PROTECT, related_name="decision"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField()
    # For approvals: the agent may start the call until then (AAP decision.expires_at).
    expires_at = models.DateTimeField(null=True, blank=True)
    # "Approve with changes": the arguments the agent may run instead of the submitted ones.
    # Null means exactly the submitted arguments.
    approved_arguments = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.status} {self.approval_id}"


class ActorType(models.TextChoices):
    AGENT = "agent", "Agent"
    REVIEWER = "reviewer", "Reviewer"
    SYSTEM = "system", "System"


class ApprovalEvent(models.Model):
    """One row per transition. Append-only: nothing updates or deletes history."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=10, choices=Status.choices)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.from_status or '∅'} -> {self.to_status}"
