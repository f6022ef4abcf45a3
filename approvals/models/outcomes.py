"""What happened after the decision: one outcome per request, reported by the agent, read from
its run's trace, or marked by the console when an approval's validity passed without a word."""

from django.db import models

from agents.models import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from approvals.models.requests import ApprovalRequest


class OutcomeStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NOT_EXECUTED = "not_executed", "Not executed"
    # The console's own mark: approved, validity passed, nobody said what happened.
    NOT_REPORTED = "not_reported", "Not reported"


class OutcomeSource(models.TextChoices):
    AGENT = "agent", "Agent"
    TRACE = "trace", "Run trace"
    SYSTEM = "system", "Console"


class RequestOutcome(models.Model):
    """The one outcome of a request. Written once: a second, different report is refused."""

    approval = models.OneToOneField(
        ApprovalRequest, on_delete=models.PROTECT, related_name="outcome"
    )
    status = models.CharField(max_length=16, choices=OutcomeStatus.choices)
    # Agent-supplied, untrusted: size-capped on the way in, escaped and marked on the way out.
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, null=True, blank=True
    )
    currency = models.CharField(max_length=3, blank=True)
    source = models.CharField(max_length=8, choices=OutcomeSource.choices)
    reported_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.status} {self.approval_id}"
