"""Approval requests, the decisions on them, and their append-only history.

The fields an agent submitted never change after creation: a reviewer decides on exactly what the
agent will run. Status moves only through approvals.services, one compare-and-set at a time, and
every move appends an ApprovalEvent.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

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

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
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
    # AAP: a reviewer's changed arguments become a denial carrying them as a suggestion; an exact
    # resubmission from the same agent is then approved (see approval_request_approve).
    suggested_arguments = models.JSONField(null=True, blank=True)

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
    # Which HMAC key signed `hash` (approvals.audit); empty on records from before keying began.
    key_id = models.CharField(max_length=16, blank=True, default="")
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
    # Whether the chain has reached its keyed part: the next append knows, without a query,
    # whether it must first mark the end of an upgraded install's unkeyed records.
    keyed = models.BooleanField(default=False)

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


# --- Notifications and escalation ----------------------------------------------------------


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"
    CONSOLE = "console", "In the console"


class NotificationPreference(models.Model):
    """How one reviewer wants to be reached, and who they are on Slack."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email_enabled = models.BooleanField(default=True)
    slack_enabled = models.BooleanField(default=True)
    console_enabled = models.BooleanField(default=True)
    # The Slack member id (U...), proven: it maps a button click in Slack to this reviewer, so it
    # is only set once the reviewer typed back a code sent to that member (approvals/slack_link.py)
    # or by an admin. A claim still waiting for its code is a SlackLinkClaim, not a link.
    slack_user_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="Verified Slack member id. Set by the reviewer proving it, or here by an admin.",
    )
    # Quiet hours in the reviewer's own time zone; start > end spans midnight (22:00-07:00).
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slack_user_id"],
                condition=~models.Q(slack_user_id=""),
                name="notification_pref_unique_slack_user",
            ),
        ]

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class SlackLinkClaim(models.Model):
    """A reviewer's claim to a Slack member id, not yet proven (approvals/slack_link.py).

    The console sends a one-time code to that member by direct message; only the person who can
    read it can type it back. Claims are not unique per member id: a claim nobody can prove
    never stands in the way of the member's real owner.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_link_claim"
    )
    slack_user_id = models.CharField(max_length=32)
    # HMAC of the code (bound to the reviewer and the member id); empty until a code is sent,
    # as for links carried over from before links were verified.
    code_digest = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user} claims Slack {self.slack_user_id}"


class EscalationChain(models.Model):
    """Ordered steps: who hears about a request that is still pending, and when."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    chain = models.ForeignKey(EscalationChain, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    # Minutes after the request was created, while it is still pending. Clamped so the step
    # fires before the deadline (see approvals.escalations.step_schedule).
    after_minutes = models.PositiveIntegerField(default=0)
    notify_team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    notify_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    notify_email = models.BooleanField(default=True)
    notify_slack = models.BooleanField(default=True)
    notify_console = models.BooleanField(default=True)
    # Hand the request to another team: its members can then see and decide it.
    reassign_to = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["chain", "position"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "position"], name="escalation_step_position"),
        ]

    def __str__(self) -> str:
        return f"{self.chain.name} #{self.position} after {self.after_minutes} min"

    @property
    def channels(self) -> list[str]:
        flags = {
            Channel.EMAIL: self.notify_email,
            Channel.SLACK: self.notify_slack,
            Channel.CONSOLE: self.notify_console,
        }
        return [channel for channel, enabled in flags.items() if enabled]


class EscalationTrigger(models.TextChoices):
    SCHEDULE = "schedule", "On schedule"
    MANUAL = "manual", "By hand"


class EscalationFiring(models.Model):
    """A step that fired for a request. Unique per (request, step): a step never fires twice."""

    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, related_name="escalation_firings"
    )
    step = models.ForeignKey(EscalationStep, on_delete=models.PROTECT, related_name="firings")
    trigger = models.CharField(max_length=10, choices=EscalationTrigger.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    note = models.TextField(blank=True)
    # When the step was due, and when it actually fired: the gap is how late beat was.
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["fired_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["approval", "step"], name="escalation_fired_once"),
        ]

    def __str__(self) -> str:
        return f"{self.step} for {self.approval_id}"


class SlackMessage(models.Model):
    """Where a request was posted in Slack, so the message can be updated with the outcome."""

    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, related_name="slack_messages"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    channel = models.CharField(max_length=32)
    ts = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "ts"], name="slack_message_unique_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}/{self.ts}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed permanently"
    SKIPPED = "skipped", "Skipped"


class Notification(models.Model):
    """The outbox: one row per (recipient, channel, request, reason).

    Written in the transaction of the event that caused it, so an event without its
    notifications (or the reverse) cannot exist. `dedupe_key` is unique: writing the same
    notification twice is a no-op, and a row is claimed (status + lease, compare-and-set)
    before it is sent, so two workers never send the same row.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, related_name="notifications"
    )
    reason = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=255, unique=True)
    # Set for updates of a message already posted (the outcome of a decision).
    slack_message = models.ForeignKey(
        SlackMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="updates"
    )
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A claimed row belongs to one worker until then; a worker that died frees it on expiry.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The re-enqueue sweep looks for due, undelivered rows.
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["recipient", "channel", "-id"], name="notification_inbox"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient_id}: {self.reason} ({self.status})"


class NotificationAttempt(models.Model):
    """One row per try at delivering a notification."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        RETRY = "retry", "Failed, will retry"
        FAILED = "failed", "Failed permanently"

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_rows"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["notification", "number"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "number"], name="attempt_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.notification_id}: {self.outcome}"


# Policy models live in their own module; importing them here registers them with the app.
from approvals.policies.models import (  # noqa: E402, F401
    CircuitBreaker,
    PolicyCondition,
    PolicyEvaluation,
    PolicyRule,
    Throttle,
)


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


# --- The decision page: preset deny reasons and a reviewer's page settings ---------------------


class DenyReasonPreset(models.Model):
    """A ready-made reason to deny a tool's requests, offered (editable) in the deny form. The
    text the reviewer sends is what the agent receives; a preset only fills the field."""

    tool_glob = models.CharField(
        max_length=200,
        default="*",
        help_text="The tool name, or a shell-style pattern (refund_*); * offers it for every tool.",
    )
    text = models.TextField(max_length=1000)
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.tool_glob}: {self.text[:60]}"


class ReviewerPageSettings(models.Model):
    """How the decision page behaves for one reviewer."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_page_settings"
    )
    # After deciding, open the next request of the queue: a reviewer working a queue keeps going.
    open_next_after_decision = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"page settings of {self.user_id}"
