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
