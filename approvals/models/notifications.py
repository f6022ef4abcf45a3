"""What reviewers are told and how: preferences, the notification outbox and its attempts,
Slack messages and Slack account links."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from approvals.models.requests import IMPACT_RANK, ApprovalRequest, Impact
from console.outbox import OutboxRow

# The reason of a notice that a request the recipient approved failed when it ran: news about
# a decided request, not a request to decide (the other reasons live in approvals/notifications.py).
REASON_OUTCOME_FAILED = "outcome-failed"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"
    CONSOLE = "console", "In the console"


class EmailMode(models.TextChoices):
    IMMEDIATE = "immediate", "One email per request, at once"
    DIGEST = "digest", "One email every few minutes listing what waits"


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
    # Digest mode: held requests are listed in one email every `digest_minutes`
    # (approvals/notifications.py, email_digests_create), not mailed one by one.
    email_mode = models.CharField(
        "Email",
        max_length=10,
        choices=EmailMode.choices,
        default=EmailMode.IMMEDIATE,
        db_default=EmailMode.IMMEDIATE,
    )
    digest_minutes = models.PositiveSmallIntegerField(
        "Digest every (minutes)",
        default=30,
        db_default=30,
        validators=[MinValueValidator(5), MaxValueValidator(24 * 60)],
        help_text="In digest mode: how often the list of waiting requests is sent (5 to 1440).",
    )

    # Told when a request this reviewer approved was reported failed when it ran
    # (approvals/notifications.py, notifications_on_outcome_failed).
    notify_on_failure = models.BooleanField(
        "Tell me when something I approved fails",
        default=True,
        db_default=True,
        help_text="When the agent reports that a request you approved failed when it ran.",
    )

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
    # Email of a reviewer in digest mode: listed in their next EmailDigest, not sent alone.
    DIGEST = "digest", "Waiting for the digest"


class EmailDigest(OutboxRow):
    """One email listing the requests a digest-mode reviewer was told of since the last one.

    A row of the one outbox (kind `email-digest`): written by the beat task with the
    notifications it lists (Notification.digest), so a worker that dies delays it, never drops it.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_digests"
    )
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="email_digest_due")]

    def __str__(self) -> str:
        return f"digest to {self.recipient_id} ({self.status})"

    def pending_approvals(self) -> list[ApprovalRequest]:
        """The requests it lists that still wait for a decision, riskiest first."""
        approvals = {
            n.approval_id: n.approval
            for n in self.notifications.select_related("approval", "approval__agent")
            if not n.approval.is_terminal
        }
        # The queue's order: the risk score (impact rank + 1 - confidence), then the deadline.
        return sorted(
            approvals.values(),
            key=lambda a: (
                -(IMPACT_RANK.get(Impact(a.impact), 1) + 1 - (a.confidence or 0.0)),
                a.deadline_at,
            ),
        )


class Notification(OutboxRow):
    """The outbox: one row per (recipient, channel, request, reason).

    Written in the transaction of the event that caused it, so an event without its
    notifications (or the reverse) cannot exist. `dedupe_key` is unique: writing the same
    notification twice is a no-op, and a row is claimed (status + lease, compare-and-set)
    before it is sent, so two workers never send the same row.
    """

    # Indexed by notification_inbox, which starts with it (no index of its own).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, related_name="notifications"
    )
    reason = models.CharField(max_length=64)
    # Unique in Meta: a field's unique=True also gets a LIKE-only varchar_pattern_ops index.
    dedupe_key = models.CharField(max_length=255)
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
    # Written before the first try sends anything, and kept through an operator's retry: a Slack
    # post has no idempotency key, so any later try first looks for a message posted since then
    # (approvals/notifiers/slack_post_once.py).
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # Set when a digest-mode email is taken into a digest.
    digest = models.ForeignKey(
        EmailDigest, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="notification_unique_dedupe_key")
        ]
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
