"""Agent identities and their API credentials.

An Agent is one running or installed agent (an AAP "instance"). It authenticates with bearer
credentials; only a digest of each credential is stored, and the plaintext is shown once.
"""

import uuid

from django.db import models


class Agent(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
        return f"{self.name} ({self.code})"

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
