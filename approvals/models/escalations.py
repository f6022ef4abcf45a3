"""Escalation chains: timed steps that notify people and may hand a request to another team
(approvals.escalations runs them)."""

from django.conf import settings
from django.db import models

from approvals.models.notifications import Channel
from approvals.models.requests import ApprovalRequest, Team


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
