"""Agent identities and their API credentials.

An Agent is one running or installed agent (an AAP "instance"). It authenticates with bearer
credentials; only a digest of each credential is stored, and the plaintext is shown once.
"""

import uuid

from django.conf import settings
from django.db import models

from approvals.agent_text import agent_text_in_quotes
from console.outbox import OutboxRow


class Agent(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The people who run or own the agent. Its requests are in effect theirs, so they may not
    # approve them (approvals/reviews.py); they may still deny: stopping your own agent is fine.
    operators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="operated_agents",
        help_text="Users who run or own this agent. They may not approve its requests.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        # Agents name themselves (AAP provisioning): wherever Django shows an agent by its
        # string (the admin's titles, breadcrumbs, selects, filters, recent actions), the name
        # reads as the agent's, in quotes, on one line, every character visible.
        return agent_text_in_quotes(self.name)


class AgentCredential(models.Model):
    """A bearer credential `aac_<prefix>_<secret>`.

    The prefix is stored in clear to find the row in one indexed lookup; the secret is stored as
    a SHA-256 digest. A slow password hash is unnecessary here: the secret is 256 random bits,
    so a fast digest is as safe against guessing and keeps authentication off the hot path.
    """

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="credentials")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_digest = models.CharField(max_length=64, editable=False)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"aac_{self.prefix}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RunStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    HALTED = "halted", "Halted"


CLOSED_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.HALTED})

# Costs are money-like: decimals, never floats, so a run's total is exact however many events.
COST_MAX_DIGITS = 18
COST_DECIMAL_PLACES = 8


class Run(models.Model):
    """One execution of an agent: the trace of what it did, and the requests it made on the way.

    `total_cost` and `last_sequence` are denormalized counters updated with F() in the same
    UPDATE that claims sequence numbers, so a budget check reads one row and concurrent appends
    never lose cost or share a sequence number.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    # The agent's own id for the run; empty when it gave none.
    external_id = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=200)
    metadata = models.JSONField(default=dict, blank=True)
    budget = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, null=True, blank=True
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.OPEN)
    close_reason = models.TextField(blank=True)
    total_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, default=0
    )
    last_sequence = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "external_id"],
                condition=~models.Q(external_id=""),
                name="run_unique_external_id_per_agent",
            ),
        ]

    def __str__(self) -> str:
        return f"{agent_text_in_quotes(self.name)} ({self.code})"  # the agent named it

    @property
    def is_open(self) -> bool:
        return self.status == RunStatus.OPEN

    @property
    def is_over_budget(self) -> bool:
        return self.budget is not None and self.total_cost > self.budget


class TraceEventType(models.TextChoices):
    LLM_CALL = "llm_call", "LLM call"
    TOOL_CALL = "tool_call", "Tool call"
    MESSAGE = "message", "Message"
    NOTE = "note", "Note"


class TraceEvent(models.Model):
    """One thing an agent did in a run. Append-only: nothing updates or deletes a trace."""

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="events")
    sequence = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=TraceEventType.choices)
    # The agent's clock (may be absent or skewed); recorded_at is ours and orders the timeline.
    occurred_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, null=True, blank=True
    )
    # The type's own fields (model, tokens, tool, result, content, text, metadata, ...).
    data = models.JSONField(default=dict)
    # The Idempotency-Key the batch came with, if any: a retried batch is stored once.
    batch_key = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="trace_unique_sequence"),
        ]
        indexes = [
            models.Index(
                fields=["run", "batch_key"],
                condition=~models.Q(batch_key=""),
                name="trace_batch_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.sequence}"


class AgentGroup(models.Model):
    """A named set of agents, so one policy rule can cover a fleet (e.g. "support bots")."""

    name = models.CharField(max_length=100, unique=True)
    agents = models.ManyToManyField(Agent, related_name="agent_groups", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentHalt(models.Model):
    """One halt of an agent, from the kill switch or the circuit breaker, and its resume.

    A halt is active until resumed_at is set. Rows are never deleted: together they are the
    record of who stopped an agent, who let it go again, and why.
    """

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="halts")
    reason = models.TextField()
    # Null means the console itself halted the agent (the circuit breaker).
    halted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    halted_at = models.DateTimeField()
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    resumed_at = models.DateTimeField(null=True, blank=True)
    resume_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-halted_at", "-id"]
        permissions = [("halt_agent", "Can halt and resume agents (kill switch)")]
        constraints = [
            # Two reviewers pressing the button at once make one halt, not two.
            models.UniqueConstraint(
                fields=["agent"],
                condition=models.Q(resumed_at__isnull=True),
                name="agent_one_active_halt",
            )
        ]

    def __str__(self) -> str:
        state = "active" if self.resumed_at is None else "resumed"
        return f"halt of {self.agent_id} ({state})"

    @property
    def is_active(self) -> bool:
        return self.resumed_at is None


class ProvisionerToken(models.Model):
    """A bearer token `aap_prov_<prefix>_<secret>` that may create and manage AAP instances.

    It cannot make approval requests. Stored like AgentCredential: prefix in clear, secret digest.
    Its scope is the instances it provisioned.
    """

    name = models.CharField(max_length=200, unique=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AapInstance(models.Model):
    """What the Agent Approval Protocol adds to an agent that a provisioner created or manages.

    The agent stays the one identity (one admin page); a deleted instance keeps its agent row,
    so its requests and decisions survive, but its credentials are revoked.
    """

    agent = models.OneToOneField(Agent, on_delete=models.PROTECT, related_name="aap_instance")
    provisioner = models.ForeignKey(
        ProvisionerToken, on_delete=models.PROTECT, related_name="instances"
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"AAP instance {self.agent}"


class WebhookReceiver(models.Model):
    """An instance's verified webhook delivery configuration (AAP asynchronous mode).

    The signing secret is kept in clear because every delivery must be signed with it; it is
    never returned by the API, shown in the admin or sent anywhere but into the HMAC.
    """

    agent = models.OneToOneField(Agent, on_delete=models.CASCADE, related_name="webhook_receiver")
    url = models.URLField(max_length=2000)
    registration_id = models.UUIDField()
    signing_secret = models.CharField(max_length=64)
    verified_at = models.DateTimeField()

    def __str__(self) -> str:
        return agent_text_in_quotes(self.url)  # the agent gave it


class InstanceOperation(models.Model):
    """The idempotency record of a provisioning or update: the key, the input and the result.

    A replay with the same key and input returns the result recorded here; a provisioning replay
    reissues the instance's credential (see agents.aap.services): no plaintext is stored, and
    none can be rebuilt from what is.
    """

    class Kind(models.TextChoices):
        PROVISION = "provision", "Provision"
        UPDATE = "update", "Update"

    provisioner = models.ForeignKey(
        ProvisionerToken, on_delete=models.PROTECT, related_name="operations"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Updates are scoped to one instance; provisioning to the provisioner alone ("").
    scope = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="aap_operations")
    credential = models.ForeignKey(
        AgentCredential, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Random; useless without the provisioner token. Empty on records from before it existed.
    credential_salt = models.CharField(max_length=64, blank=True)
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provisioner", "kind", "scope", "idempotency_key"],
                name="aap_operation_unique_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.agent_id} ({self.idempotency_key})"


class WebhookNotification(OutboxRow):
    """One `request.resolved` event, written in the transaction of the decision: a row of the
    one outbox (approvals/outbox.py, agents.aap.webhooks.WebhookOutbox).

    A Celery task delivers it; beat re-enqueues any that are due, so a lost task, a dead broker or
    worker, or a receiver outage delays the event but never loses it.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="notifications")
    approval = models.OneToOneField(
        "approvals.ApprovalRequest", on_delete=models.PROTECT, related_name="notification"
    )
    # The body is fixed at creation and sent byte for byte on every attempt.
    body = models.TextField()
    created_at = models.DateTimeField()  # = decision.decided_at
    deliver_until = models.DateTimeField()
    # OutboxRow's delivery fields (lease_until, attempts), with this table's own column types.
    # The lease keeps the column it had before the one outbox (claimed_until): a rename would
    # break the previous release's servers during a rolling upgrade (console/migration_safety.py).
    lease_until = models.DateTimeField(null=True, blank=True, db_column="claimed_until")
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Delivery removed, instance deleted, or the retry window ran out.
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"request.resolved {self.code}"


class OperationClaim(models.Model):
    """Held while an instance operation verifies its receiver, so that concurrent attempts with
    the same idempotency key wait for it instead of verifying in parallel (then replay its result).

    A row, not a transaction-long lock: verification takes up to ten seconds of someone else's
    server, and no database transaction should stay open that long.
    """

    provisioner = models.ForeignKey(ProvisionerToken, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16)
    scope = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255)
    # A claim whose holder died is taken over after this.
    claimed_until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provisioner", "kind", "scope", "idempotency_key"],
                name="aap_operation_claim_unique_key",
            )
        ]

    def __str__(self) -> str:
        return f"claim {self.kind} {self.idempotency_key}"
