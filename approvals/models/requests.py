"""Approval requests, the decisions on them, and their append-only history.

The fields an agent submitted never change after creation: a reviewer decides on exactly what the
agent will run. Status moves only through approvals.services, one compare-and-set at a time, and
every move appends an ApprovalEvent.
"""

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from agents.models import Agent, Run
from approvals.agent_text import agent_tool_quoted


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
# Impacts whose approval needs a second, deliberate step that names the tool, on every surface
# (approvals.services.confirmation enforces it; the surfaces only ask for it).
CONFIRMED_IMPACTS = frozenset({Impact.HIGH, Impact.CRITICAL})


def _queue_order_expression() -> models.Expression:
    """Minus the risk score (impact rank + 1 - confidence, unstated confidence counting as 0)."""
    impact_rank = models.Case(
        *[
            models.When(impact=impact, then=models.Value(rank))
            for impact, rank in IMPACT_RANK.items()
        ],
        default=models.Value(1),
        output_field=models.FloatField(),
    )
    return (
        Coalesce(models.F("confidence"), models.Value(0.0, output_field=models.FloatField()))
        - impact_rank
        - models.Value(1.0, output_field=models.FloatField())
    )


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


class Kind(models.TextChoices):
    """What the agent wants from a person: leave to run a tool, or an answer to a question."""

    APPROVAL = "approval", "Approval"
    QUESTION = "question", "Question"


class ApprovalRequest(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: approval_unique_idempotency_key starts with the agent, and every
    # index is one more insertion on each gated call.
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="approval_requests", db_index=False
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.NATIVE)
    # A question is answered rather than approved (docs/questions.md): the same lifecycle,
    # policies, routing and deadline; the reviewer's answer must satisfy `answer_schema`.
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.APPROVAL, db_default=Kind.APPROVAL
    )
    answer_schema = models.JSONField(null=True, blank=True)
    # The schema as the agent wrote it: jsonb sorts keys, and the answer form shows the
    # properties in the agent's order (`answer_schema_in_order`).
    answer_schema_raw = models.TextField(blank=True, default="", db_default="")
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
    # As submitted ("30m"), echoed back; timeout_seconds is the window actually granted. Text:
    # a valid duration may have any number of digits (it is shortened, not refused), up to the
    # agent APIs' field cap (console.api_limits).
    timeout = models.TextField()
    timeout_seconds = models.PositiveIntegerField()
    # AAP echoes what the agent sent exactly (every digit, key order), which the parsed JSONFields
    # cannot: jsonb sorts keys and floats round. The exact JSON text is kept here ("" = native).
    arguments_raw = models.TextField(blank=True)
    context_raw = models.TextField(blank=True)
    # The optional top-level `server` an AAP client sends on MCP calls, echoed as sent.
    server_raw = models.TextField(blank=True)
    # Approved at once because a reviewer suggested exactly these arguments on that request.
    approved_as_suggested_on = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="suggestion_taken_by",
    )

    # Routing and review requirements (set when the request is created; policies decide them).
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="approval_requests"
    )
    required_approvals = models.PositiveSmallIntegerField(default=1)
    # Why the console held this request for a person, in words the reviewer and agent can read.
    hold_reason = models.TextField(blank=True)
    # The same reason as parts, the agent's values kept apart from the console's words
    # (approvals.reasons); null on rows written before, which show hold_reason as the agent's.
    hold_reason_parts = models.JSONField(null=True, blank=True)
    # Who hears about this request, and when, while it waits. Policies set it; null means the
    # chain named by settings.ESCALATION_DEFAULT_CHAIN.
    escalation_chain = models.ForeignKey(
        "approvals.EscalationChain",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approval_requests",
    )

    # Native API: the run this request belongs to, reviewer-facing labels, and the JSON Schema
    # of the tool's arguments that a reviewer's changed arguments must also satisfy.
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.PROTECT, related_name="approval_requests"
    )
    labels = models.JSONField(default=list, blank=True)
    arguments_schema = models.JSONField(null=True, blank=True)
    # Links the agent gave to the source system ([{"label", "url"}], http/https only, checked
    # by the native API's serializer): shown to reviewers as marked external links.
    links = models.JSONField(default=list, db_default=[], blank=True)
    # The W3C `traceparent` of the call that created it (console.tracing), normalized: the
    # console's spans for this request (its wait, its outcome) join the agent's trace under it,
    # whichever process records them. "" when the agent sent none.
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")

    # Indexed by approval_status_deadline, which starts with it (no index of its own).
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    deadline_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # Riskiest first is ascending order of this column: computed by the database from fields
    # that never change, so one ascending index serves the queue's order and its cursor.
    queue_order = models.GeneratedField(
        expression=_queue_order_expression(), output_field=models.FloatField(), db_persist=True
    )

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
            # The queue (urgent ones aside): riskiest first, then soonest deadline.
            models.Index(
                fields=["queue_order", "deadline_at", "id"],
                condition=models.Q(status=Status.PENDING),
                name="approval_queue_order",
            ),
            # The queue's counts per filter value: one index-only scan of the pending requests.
            models.Index(
                fields=["team", "agent", "tool", "impact"],
                condition=models.Q(status=Status.PENDING),
                name="approval_pending_facets",
            ),
            # History and the reviewer API's decided list: newest decision first.
            models.Index(
                fields=["-decided_at", "-id"],
                condition=~models.Q(status=Status.PENDING),
                name="approval_decided_order",
            ),
        ]

    def __str__(self) -> str:
        # The tool's name is the agent's: quoted, so one named "Approved" never reads as a
        # verdict where Django shows a request by its string (the admin's titles and columns).
        return f"{agent_tool_quoted(self.tool)} ({self.code})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_question(self) -> bool:
        return self.kind == Kind.QUESTION

    @property
    def needs_confirmation(self) -> bool:
        """Whether approving it needs a confirmation naming its tool (CONFIRMED_IMPACTS)."""
        return self.impact in CONFIRMED_IMPACTS

    @property
    def status_label(self) -> str:
        """The status as people read it: a question is answered or declined, not approved or
        denied. (The APIs keep `approved` and `denied`: one lifecycle, docs/questions.md.)"""
        if self.kind == Kind.QUESTION:
            if self.status == Status.APPROVED:
                return "Answered"
            if self.status == Status.DENIED:
                return "Declined"
        return self.get_status_display()

    @property
    def answer_schema_in_order(self) -> dict[str, Any] | None:
        """The answer schema with its keys in the order the agent sent them."""
        if self.answer_schema_raw:
            ordered: dict[str, Any] = json.loads(self.answer_schema_raw)
            return ordered
        return self.answer_schema  # type: ignore[no-any-return]


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
    # AAP: a reviewer's changed arguments become a denial carrying them as a suggestion; an exact
    # resubmission from the same agent, asking for nothing more than the reviewers saw (impact,
    # server, the context that changes what the call does), is then approved
    # (approvals.services.suggestions); otherwise it waits for them.
    suggested_arguments = models.JSONField(null=True, blank=True)
    # Questions: the reviewer's answer, valid against the request's answer_schema. Null for
    # approvals, and for a question declined (denied) or expired: no answer was given.
    answer = models.JSONField(null=True, blank=True)

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


# --- Notifications and escalation ----------------------------------------------------------


class ApprovalVote(models.Model):
    """One reviewer's approval towards a quorum. Distinct reviewers: one vote each per request.

    A vote is for one set of arguments (null: as submitted); the quorum is N votes for the same
    set, so nobody's approval is silently applied to arguments they never saw.
    """

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="votes")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    arguments = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["approval", "reviewer"], name="approval_vote_unique")
        ]

    def __str__(self) -> str:
        return f"vote {self.reviewer_id} on {self.approval_id}"


class ApprovalClaim(models.Model):
    """A soft lock: "I am on this one". Visible to everyone, expires, and can be taken over."""

    approval = models.OneToOneField(ApprovalRequest, on_delete=models.CASCADE, related_name="claim")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"claim {self.reviewer_id} on {self.approval_id}"


class ReviewerPresence(models.Model):
    """Who has a request open right now: one row per open websocket, removed when it closes."""

    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="presences"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    channel_name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.reviewer_id} on {self.approval_id}"
