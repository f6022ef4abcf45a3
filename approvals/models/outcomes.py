"""What happened after the decision: one outcome per request, reported by the agent, read from
its run's trace, or marked by the console when an approval's validity passed without a word."""

from dataclasses import dataclass

from django.db import models
from django.db.models import Q

from agents.models import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from approvals.models.policies import Outcome
from approvals.models.requests import ApprovalRequest, Status


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


# Approved by a policy rule, with no person involved: what a rule's outcome record counts (the
# rule's admin page, the insight dashboard). A rule a guardrail overrode held, not approved.
APPROVED_BY_RULE = Q(
    status=Status.APPROVED,
    decision__reviewer__isnull=True,
    policy_evaluation__decided_by="rule",
    policy_evaluation__outcome=Outcome.APPROVE,
)


@dataclass
class OutcomeTally:
    """What happened after a number of approvals: how many of them ended in each outcome.

    `awaiting`: approved, and nothing reported or marked yet (the approval's validity is still
    open). The rates are over the approvals whose outcome is known, so an approval nobody
    reported on (`not_reported`) lowers the success rate: it is never counted as a success.
    """

    approved: int = 0
    succeeded: int = 0
    failed: int = 0
    not_executed: int = 0
    not_reported: int = 0

    def add(self, status: str | None, count: int = 1) -> None:
        """Count `count` approvals whose outcome is `status` (None: none yet)."""
        self.approved += count
        if status in _TALLIED:
            setattr(self, status, getattr(self, status) + count)

    @property
    def known(self) -> int:
        return self.succeeded + self.failed + self.not_executed + self.not_reported

    @property
    def awaiting(self) -> int:
        return self.approved - self.known

    @property
    def parts(self) -> list[tuple[str, str, int]]:
        """(status, words, count) for each outcome that occurred, in a fixed order."""
        parts = [
            (OutcomeStatus.SUCCEEDED.value, "succeeded", self.succeeded),
            (OutcomeStatus.FAILED.value, "failed", self.failed),
            (OutcomeStatus.NOT_EXECUTED.value, "not executed", self.not_executed),
            (OutcomeStatus.NOT_REPORTED.value, "not reported", self.not_reported),
            ("awaiting", "no outcome yet", self.awaiting),
        ]
        return [part for part in parts if part[2]]

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.known if self.known else None

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.known if self.known else None


_TALLIED = frozenset(OutcomeStatus.values)
