"""Agent identities and their API credentials.

An Agent is one running or installed agent (an AAP "instance"). It authenticates with bearer
credentials; only a digest of each credential is stored, and the plaintext is shown once.
"""

import uuid

from django.conf import settings
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
