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


class AuditActorType(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"
    # Someone who did not authenticate, e.g. a failed login.
    ANONYMOUS = "anonymous", "Anonymous"


class AuditRecord(models.Model):
    """One effectful action, append-only and hash-chained (see approvals.audit).

    Actors and objects are stored as immutable ids and labels, not foreign keys: an audit row
    must outlive what it describes, and an ON DELETE action would have to update it.
    """

    # Position in the chain, 1-based, without gaps: a deleted or inserted row shows as a gap.
    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor_type = models.CharField(max_length=10, choices=AuditActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"


class AuditChainHead(models.Model):
    """The single row that serializes appends and remembers the chain's end.

    Appenders lock it (SELECT ... FOR UPDATE) so two transactions never extend the chain from the
    same record; it also lets audit_verify notice records cut off the end of the chain.
    """

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit chain at #{self.last_sequence}"


class DecisionPageView(models.Model):
    """When a reviewer first opened a request's decision page: the start of their time on it."""

    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="page_views"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    first_viewed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["approval", "reviewer"], name="decision_page_view_once_per_reviewer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} opened {self.approval_id} at {self.first_viewed_at}"
