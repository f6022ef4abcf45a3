"""Digests: one email every N minutes for reviewers who chose it (or were switched to it for an
hour by the volume of single emails), listing the requests still waiting, riskiest first. A digest
is a row of the one outbox (approvals/outbox.py), so a dead worker delays it, never drops it."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.models import (
    Channel,
    EmailDigest,
    EmailMode,
    Notification,
    NotificationStatus,
)
from approvals.notifications import NotificationStatusOutbox, preference_for
from approvals.outbox import (
    KIND_EMAIL_DIGEST,
    Dropped,
    outbox_enqueue_after_commit,
)
from console.outbox import Transport


def email_digests_create(*, now: datetime | None = None) -> list[EmailDigest]:
    """Run by beat every minute: for each reviewer with emails waiting for a digest whose
    interval has passed since their last digest, one EmailDigest row taking those emails, in the
    outbox. A reviewer in immediate mode has emails waiting only when a busy hour switched them
    to a digest: theirs come every NOTIFICATION_AUTO_DIGEST_MINUTES."""
    now = now or timezone.now()
    waiting = Notification.objects.filter(
        channel=Channel.EMAIL, status=NotificationStatus.DIGEST, digest__isnull=True
    )
    created = []
    for recipient_id in set(waiting.values_list("recipient_id", flat=True)):
        with transaction.atomic():
            recipient = get_user_model().objects.get(pk=recipient_id)
            preference = preference_for(recipient)
            # Not in digest mode: switched automatically for a busy hour (approvals waiting).
            minutes = (
                preference.digest_minutes
                if preference.email_mode == EmailMode.DIGEST
                else settings.NOTIFICATION_AUTO_DIGEST_MINUTES
            )
            last = (
                EmailDigest.objects.filter(recipient_id=recipient_id)
                .order_by("-created_at")
                .values_list("created_at", flat=True)
                .first()
            )
            if last is not None and now - last < timedelta(minutes=minutes):
                continue
            # Locked: two beats at once must not list the same email in two digests.
            ids = list(
                waiting.select_for_update()
                .filter(recipient_id=recipient_id)
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            digest = EmailDigest.objects.create(
                recipient_id=recipient_id, created_at=now, next_attempt_at=now
            )
            Notification.objects.filter(pk__in=ids).update(digest=digest)
            outbox_enqueue_after_commit(kind=KIND_EMAIL_DIGEST, row_ids=[digest.pk])
            created.append(digest)
    return created


class EmailDigestOutbox(NotificationStatusOutbox[EmailDigest]):
    """The digest's part of the one outbox: a status column like notifications, no attempt rows.

    Sent: the emails it lists that were still pending become `sent`, the others `skipped`
    ("decided"). Nothing left pending when its turn comes: the digest is skipped, not sent.
    """

    kind = KIND_EMAIL_DIGEST
    model = EmailDigest

    def fetch(self, row_id: int) -> EmailDigest:
        return EmailDigest.objects.select_related("recipient").get(pk=row_id)

    def transport_for(self, row: EmailDigest, now: datetime) -> Transport:
        if not row.pending_approvals():
            raise Dropped("decided")
        from approvals.notifiers.email import EmailDigestNotifier

        return EmailDigestNotifier()

    def audit_context(self, row: EmailDigest, receipt: object | None) -> dict[str, object]:
        return {
            "recipient": row.recipient.get_username(),
            "channel": Channel.EMAIL,
            "reason": "digest",
            "approvals": sorted(
                str(code) for code in row.notifications.values_list("approval__code", flat=True)
            ),
            "attempts": row.attempts,
        }

    def drop(
        self,
        row: EmailDigest,
        ours: QuerySet[EmailDigest],
        attempt: models.Model | None,
        reason: str,
    ) -> None:
        with transaction.atomic():
            if ours.update(status=NotificationStatus.SKIPPED, lease_until=None, last_error=reason):
                row.notifications.update(status=NotificationStatus.SKIPPED, last_error=reason)

    def after_sent(self, row: EmailDigest, receipt: object | None) -> None:
        listed = row.notifications.all()
        listed.filter(approval__status="pending").update(
            status=NotificationStatus.SENT, sent_at=timezone.now()
        )
        listed.exclude(approval__status="pending").update(
            status=NotificationStatus.SKIPPED, last_error="decided"
        )
