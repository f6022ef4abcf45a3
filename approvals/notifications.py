"""Reviewer notifications: who is told what, on which channel, as rows of the one outbox.

Rows are written inside the transaction of the event that caused them (a submitted request, a
fired escalation step, a decision), so there is never an event without its notifications or the
reverse. The row's unique `dedupe_key` makes writing the same notification twice a no-op.
Delivery (claim with a lease, retry with backoff or the receiver's Retry-After, give up, audit,
the beat sweep) is the one outbox's, in approvals/outbox.py; `NotificationOutbox` below says how
this kind's rows read: a status column, one NotificationAttempt per try, an attempt limit, and a
transport per channel (approvals/notifiers).
"""

# long: who is told (preferences, quiet hours, folding a second message for the same person) and
# how this kind's rows are delivered read one set of rules; digests live in approvals/digests.py.

import json
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from approvals.access import reviewer_may_see
from approvals.audit import AuditAction, audit_record
from approvals.models import (
    REASON_OUTCOME_FAILED,
    ApprovalRequest,
    Channel,
    EmailMode,
    Notification,
    NotificationAttempt,
    NotificationPreference,
    NotificationStatus,
    OutcomeStatus,
    SlackMessage,
    Status,
)
from approvals.notifiers import notifier_for
from approvals.notifiers.base import PostedMessage
from approvals.outbox import (
    KIND_NOTIFICATION,
    Dropped,
    Outbox,
    outbox_enqueue_after_commit,
)
from console.outbox import OutboxRow, Transport, backoff_seconds

REASON_ROUTED = "routed"
REASON_RESOLVED = "resolved"


def escalation_reason(step_id: int) -> str:
    return f"escalation-{step_id}"


# --- Preferences ------------------------------------------------------------------------------


def preference_for(user: User) -> NotificationPreference:
    """The reviewer's preferences, or the defaults (every channel, no quiet hours) unsaved."""
    try:
        return user.notification_preference
    except NotificationPreference.DoesNotExist:
        return NotificationPreference(user=user)


def in_quiet_hours(preference: NotificationPreference, now: datetime) -> bool:
    start, end = preference.quiet_hours_start, preference.quiet_hours_end
    if start is None or end is None or start == end:
        return False
    try:
        zone = zoneinfo.ZoneInfo(preference.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local: time = now.astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # spans midnight, e.g. 22:00-07:00


def notification_preference_update(
    *, user: User, values: dict[str, object]
) -> NotificationPreference:
    preference, _ = NotificationPreference.objects.get_or_create(user=user)
    for name, value in values.items():
        setattr(preference, name, value)
    preference.full_clean()
    preference.save()
    return preference


# --- Writing the outbox -------------------------------------------------------------------------


def _skip_reason(*, user: User, channel: str, preference: NotificationPreference) -> str | None:
    """Why this reviewer cannot be reached on this channel at all (None: they can)."""
    if channel == Channel.EMAIL:
        if not preference.email_enabled:
            return "off"
        if not getattr(user, "email", ""):
            return "no email address"
    elif channel == Channel.SLACK:
        if not preference.slack_enabled:
            return "off"
        if not settings.SLACK_BOT_TOKEN:
            return "no Slack"
        if not preference.slack_user_id:
            return "no Slack user id"
    elif channel == Channel.CONSOLE and not preference.console_enabled:
        return "off"
    return None


def notifications_create(
    *,
    approval: ApprovalRequest,
    recipients: Iterable[User],
    channels: Iterable[str],
    reason: str,
    now: datetime | None = None,
    urgent: bool = False,
) -> list[Notification]:
    """Write the outbox rows for one event. Call inside the event's transaction.

    A channel the reviewer turned off (or cannot be reached on) gets no row. During the
    reviewer's quiet hours email and Slack get a `skipped` row, visible in the admin, unless
    `urgent` (the last escalation step before the deadline): that one always goes out.
    """
    now = now or timezone.now()
    created = [
        notification
        for row in _outbox_rows(
            approval=approval, recipients=recipients, channels=channels, reason=reason,
            now=now, urgent=urgent, fold=True,
        )
        if (notification := _insert_once(now=now, **row)) is not None
    ]  # fmt: skip
    _enqueue_after_commit([n.pk for n in created if n.status == NotificationStatus.PENDING])
    return created


def _outbox_rows(
    *,
    approval: ApprovalRequest,
    recipients: Iterable[User],
    channels: Iterable[str],
    reason: str,
    now: datetime,
    urgent: bool,
    fold: bool,
    emails_last_hour: dict[int, int] | None = None,
    digest: bool = True,
) -> list[dict[str, Any]]:
    """The fields of each outbox row an event calls for: who, on which channel, in what state.

    With `fold`, a reviewer already told of this request on this channel within
    NOTIFICATION_FOLD_WINDOW_SECONDS (as a team member, say, before an escalation step named
    them) gets a `skipped` row, "duplicate of #id", instead of a second message; the urgent last
    step still goes out. (Requests created in this transaction have no earlier rows: no fold.)
    Without `digest`, an email is never put into a digest (which lists requests still waiting).
    """
    channels = list(dict.fromkeys(channels))
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for user in recipients:
        if user.pk in seen or not user.is_active:
            continue
        seen.add(user.pk)
        preference = preference_for(user)
        quiet = in_quiet_hours(preference, now)
        for channel in channels:
            if _skip_reason(user=user, channel=channel, preference=preference):
                continue
            status, error = NotificationStatus.PENDING, ""
            if channel == Channel.CONSOLE:
                # The row is the message: it is on the reviewer's page as soon as it commits.
                status = NotificationStatus.SENT
            elif quiet and not urgent:
                status, error = NotificationStatus.SKIPPED, "quiet hours"
            elif fold and not urgent and (earlier := _told_recently(user, channel, approval, now)):
                status, error = NotificationStatus.SKIPPED, f"duplicate of #{earlier}"
            elif (
                channel == Channel.EMAIL
                and digest
                and not urgent
                and _in_digest(user, preference, now, emails_last_hour)
            ):
                status = NotificationStatus.DIGEST
            rows.append(
                {
                    "recipient": user,
                    "channel": channel,
                    "approval": approval,
                    "reason": reason,
                    "dedupe_key": f"{approval.code}:{reason}:{channel}:{user.pk}",
                    "status": status,
                    "last_error": error,
                }
            )
    return rows


def _in_digest(
    user: User,
    preference: NotificationPreference,
    now: datetime,
    emails_last_hour: dict[int, int] | None,
) -> bool:
    """Whether this reviewer's email goes into a digest: they chose it, or they were sent more
    than a few emails in the last hour (then until the hour's count drops again).
    `emails_last_hour`: the counts, already fetched for a batch (None: ask)."""
    if preference.email_mode == EmailMode.DIGEST:
        return True
    limit = settings.NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR
    if not limit:
        return False
    if emails_last_hour is None:
        emails_last_hour = _emails_in_last_hour([user.pk], now)
    return emails_last_hour.get(user.pk, 0) >= limit


def _emails_in_last_hour(user_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Single emails (not digests, not Slack updates) sent or on their way, per reviewer."""
    return dict(
        Notification.objects.filter(
            recipient_id__in=list(user_ids),
            channel=Channel.EMAIL,
            slack_message__isnull=True,
            created_at__gte=now - timedelta(hours=1),
            status__in=[
                NotificationStatus.PENDING,
                NotificationStatus.SENDING,
                NotificationStatus.SENT,
            ],
        )
        .values("recipient_id")
        .annotate(count=Count("pk"))
        .values_list("recipient_id", "count")
    )


def _told_recently(
    user: User, channel: str, approval: ApprovalRequest, now: datetime
) -> int | None:
    """The id of a message on this channel about this request, sent or on its way, that is
    recent enough to stand for a new one (None: there is none)."""
    window = timedelta(seconds=settings.NOTIFICATION_FOLD_WINDOW_SECONDS)
    return (
        Notification.objects.filter(
            recipient=user,
            channel=channel,
            approval=approval,
            slack_message__isnull=True,
            created_at__gte=now - window,
            status__in=[
                NotificationStatus.PENDING,
                NotificationStatus.SENDING,
                NotificationStatus.SENT,
                NotificationStatus.DIGEST,
            ],
        )
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )


def _insert_once(*, now: datetime, **fields: object) -> Notification | None:
    try:
        # A savepoint: a duplicate must not abort the event's transaction on PostgreSQL.
        with transaction.atomic():
            return Notification.objects.create(
                created_at=now,
                next_attempt_at=now,
                sent_at=now if fields["status"] == NotificationStatus.SENT else None,
                **fields,
            )
    except IntegrityError:
        return None


def notifications_on_submitted(*, approval: ApprovalRequest) -> list[Notification]:
    """A new request: tell the members of the team it is routed to (once: a repeat is a no-op)."""
    if approval.team_id is None:
        return []
    return notifications_create(
        approval=approval,
        recipients=_team_members(approval.team_id),
        channels=[Channel.EMAIL, Channel.SLACK, Channel.CONSOLE],
        reason=REASON_ROUTED,
        now=approval.created_at,
    )


def notifications_on_submitted_many(*, approvals: list[ApprovalRequest]) -> list[Notification]:
    """notifications_on_submitted for requests created in this transaction: one query per team
    and one multi-row insert for the lot. The requests are new, so none of their rows can exist
    yet and the per-row duplicate check (a savepoint each) is not needed."""
    members_of = {
        team_id: list(_team_members(team_id))
        for team_id in {approval.team_id for approval in approvals if approval.team_id is not None}
    }
    if not members_of:
        return []
    # One query for the batch: how many emails each member was sent in the last hour.
    emails_last_hour = _emails_in_last_hour(
        {user.pk for members in members_of.values() for user in members}, timezone.now()
    )
    notifications = [
        Notification(
            created_at=approval.created_at,
            next_attempt_at=approval.created_at,
            sent_at=approval.created_at if row["status"] == NotificationStatus.SENT else None,
            **row,
        )
        for approval in approvals
        if approval.team_id is not None
        for row in _outbox_rows(
            approval=approval,
            recipients=members_of[approval.team_id],
            channels=[Channel.EMAIL, Channel.SLACK, Channel.CONSOLE],
            reason=REASON_ROUTED,
            now=approval.created_at,
            urgent=False,
            fold=False,
            emails_last_hour=emails_last_hour,
        )
    ]
    Notification.objects.bulk_create(notifications)
    _enqueue_after_commit([n.pk for n in notifications if n.status == NotificationStatus.PENDING])
    return notifications


def _team_members(team_id: int) -> Iterable[User]:
    # With their preferences: every row written asks which channels each member chose.
    return get_user_model().objects.filter(teams=team_id).select_related("notification_preference")


def notifications_on_resolved(*, approval_id: int) -> list[Notification]:
    """A decision, wherever it was made: every Slack message about the request shows it."""
    created = [
        notification
        for message in SlackMessage.objects.filter(approval_id=approval_id)
        if (notification := _slack_update_for(message)) is not None
    ]
    _enqueue_after_commit([n.pk for n in created])
    return created


def notifications_on_outcome_failed(
    *, approval_id: int, now: datetime | None = None
) -> list[Notification]:
    """An approved request was reported failed when it ran: tell the people who approved it.

    Only them, only those who kept the preference on (the default), and only while they may
    still see the request (approvals/access.py): a reviewer who left the team is told nothing
    about it. A policy's approval has nobody to tell. Never folded into an earlier message about
    the request (that one asked for a decision; this is news) nor put into a digest (a digest
    lists requests still waiting). Call inside the transaction that recorded the outcome.
    """
    approval = (
        ApprovalRequest.objects.select_related(
            "outcome", "decision__reviewer__notification_preference"
        )
        .filter(pk=approval_id, status=Status.APPROVED, outcome__status=OutcomeStatus.FAILED)
        .first()
    )
    if approval is None:
        return []
    recipients = [
        user
        for user in _approvers(approval)
        if preference_for(user).notify_on_failure
        and reviewer_may_see(user=user, team_id=approval.team_id)
    ]
    now = now or timezone.now()
    created = [
        notification
        for row in _outbox_rows(
            approval=approval,
            recipients=recipients,
            channels=[Channel.EMAIL, Channel.SLACK, Channel.CONSOLE],
            reason=REASON_OUTCOME_FAILED,
            now=now,
            urgent=False,
            fold=False,
            digest=False,
        )
        if (notification := _insert_once(now=now, **row)) is not None
    ]
    _enqueue_after_commit([n.pk for n in created if n.status == NotificationStatus.PENDING])
    return created


def _approvers(approval: ApprovalRequest) -> list[User]:
    """Who approved what ran: the reviewer whose approval decided it and, under a quorum, those
    who voted for the same arguments (a vote for other arguments approved something else)."""
    decision = approval.decision
    if decision.reviewer is None:
        return []

    def canonical(arguments: Any) -> str:
        return json.dumps(arguments, sort_keys=True, separators=(",", ":"))

    ran = canonical(decision.approved_arguments)
    voters = [
        vote.reviewer
        for vote in approval.votes.select_related("reviewer__notification_preference")
        if canonical(vote.arguments) == ran
    ]
    return [decision.reviewer, *voters]


def _slack_update_for(message: SlackMessage) -> Notification | None:
    # Editing a message pings nobody, so quiet hours do not apply.
    return _insert_once(
        recipient_id=message.recipient_id,
        channel=Channel.SLACK,
        approval_id=message.approval_id,
        reason=REASON_RESOLVED,
        slack_message=message,
        dedupe_key=f"slack-update:{message.pk}",
        status=NotificationStatus.PENDING,
        last_error="",
        now=timezone.now(),
    )


def _enqueue_after_commit(notification_ids: list[int]) -> None:
    outbox_enqueue_after_commit(kind=KIND_NOTIFICATION, row_ids=notification_ids)


# --- Delivering: this kind's part of the one outbox (approvals/outbox.py) ----------------------


class NotificationStatusOutbox[Row: OutboxRow](Outbox[Row]):
    """What the notification kinds of the outbox share (a message, an email digest): a status
    column (pending, sending, sent, failed), the notification settings for leases, attempts and
    backoff, and the notification audit actions."""

    audit_sent = AuditAction.NOTIFICATION_SENT
    audit_failed = AuditAction.NOTIFICATION_FAILED
    claim_fields = {"status": NotificationStatus.SENDING}
    retry_fields = {"status": NotificationStatus.PENDING}

    def lease_seconds(self) -> float:
        return float(settings.NOTIFICATION_LEASE_SECONDS)

    def claimable(self, now: datetime) -> Q:
        return Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now) | Q(
            status=NotificationStatus.SENDING, lease_until__lt=now
        )

    def due(self, now: datetime) -> Q:
        grace = timedelta(seconds=settings.NOTIFICATION_REQUEUE_AFTER_SECONDS)
        return Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now - grace) | Q(
            status=NotificationStatus.SENDING, lease_until__lt=now
        )

    def max_attempts(self) -> int | None:
        return int(settings.NOTIFICATION_MAX_ATTEMPTS)

    def backoff(self, attempts: int) -> float:
        return notification_backoff_seconds(attempts)

    def sent_fields(self) -> dict[str, Any]:
        return {"status": NotificationStatus.SENT, "sent_at": timezone.now()}

    def failed_fields(self, *, reason: str, error: str) -> dict[str, Any]:
        return {"status": NotificationStatus.FAILED, "last_error": error}

    def failed_audit_after(self, *, reason: str, error: str) -> dict[str, Any]:
        return {"status": NotificationStatus.FAILED, "last_error": error[:2000]}


class NotificationOutbox(NotificationStatusOutbox[Notification]):
    kind = KIND_NOTIFICATION
    model = Notification

    def claimable(self, now: datetime) -> Q:
        # Console rows are the message itself: nothing to deliver.
        return super().claimable(now) & ~Q(channel=Channel.CONSOLE)

    def fetch(self, row_id: int) -> Notification:
        return Notification.objects.select_related(
            "recipient",
            "recipient__notification_preference",
            "approval",
            "approval__agent",
            "approval__decision",
            "approval__decision__reviewer",
            "approval__outcome",
            "slack_message",
        ).get(pk=row_id)

    def transport_for(self, row: Notification, now: datetime) -> Transport:
        # A failure notice is about a decided request: it is never stale for being decided.
        news = row.slack_message_id is not None or row.reason == REASON_OUTCOME_FAILED
        if not news and row.approval.is_terminal:
            # Decided before we got to it: "please decide" would only be noise now.
            raise Dropped("decided")
        return notifier_for(row.channel)

    def audit_context(self, row: Notification, receipt: object | None) -> dict[str, object]:
        return _audit_context(row)

    def attempt_begin(self, row: Notification, now: datetime) -> NotificationAttempt:
        # Numbered on from the tries before: an operator's retry starts `attempts` at 0 again,
        # and the rows of the earlier tries stay (their numbers are unique per notification).
        earlier = row.attempt_rows.aggregate(last=Max("number"))["last"] or 0
        return NotificationAttempt.objects.create(
            notification=row, number=max(row.attempts, earlier + 1), started_at=now
        )

    def attempt_end(self, attempt: models.Model | None, outcome: str, error: str) -> None:
        assert isinstance(attempt, NotificationAttempt)
        attempt.outcome = outcome
        attempt.error = error[:2000]
        attempt.finished_at = timezone.now()
        attempt.save(update_fields=["outcome", "error", "finished_at"])

    def drop(
        self,
        row: Notification,
        ours: QuerySet[Notification],
        attempt: models.Model | None,
        reason: str,
    ) -> None:
        # Not a failure: nobody needs telling any more, so nothing is audited either.
        self.attempt_end(attempt, NotificationAttempt.Outcome.SENT, "")
        ours.update(status=NotificationStatus.SKIPPED, lease_until=None, last_error=reason)

    def after_sent(self, row: Notification, receipt: object | None) -> None:
        if not isinstance(receipt, PostedMessage):
            return
        slack_message, _ = SlackMessage.objects.get_or_create(
            channel=receipt.channel,
            ts=receipt.ts,
            defaults={"approval": row.approval, "recipient": row.recipient},
        )
        # Decided while we were posting: the resolved hook did not know this message yet.
        if ApprovalRequest.objects.filter(pk=row.approval_id).exclude(
            status="pending"
        ).exists() and (update := _slack_update_for(slack_message)):
            _enqueue_after_commit([update.pk])


def notification_backoff_seconds(attempts: int) -> float:
    return backoff_seconds(
        attempts,
        base=settings.NOTIFICATION_BACKOFF_BASE_SECONDS,
        cap=settings.NOTIFICATION_BACKOFF_MAX_SECONDS,
    )


def _audit_context(notification: Notification) -> dict[str, object]:
    return {
        "approval": str(notification.approval.code),
        "recipient": notification.recipient.get_username(),
        "channel": notification.channel,
        "reason": notification.reason,
        "attempts": notification.attempts,
    }


# --- The reviewer's inbox ---------------------------------------------------------------------


def notifications_mark_read(*, user: User, now: datetime | None = None) -> int:
    return Notification.objects.filter(
        recipient=user, channel=Channel.CONSOLE, read_at__isnull=True
    ).update(read_at=now or timezone.now())


def notifications_retry_failed(
    *, notification_ids: Iterable[int], actor: User | None = None
) -> int:
    """An operator's second chance for failed rows (after fixing a token, say)."""
    with transaction.atomic():
        # Locked, so a row is re-queued (and recorded) once even if two operators click at once.
        failed = list(
            Notification.objects.select_for_update()
            .filter(pk__in=list(notification_ids), status=NotificationStatus.FAILED)
            .select_related("approval", "recipient")
        )
        ids = [notification.pk for notification in failed]
        Notification.objects.filter(pk__in=ids).update(
            status=NotificationStatus.PENDING, next_attempt_at=timezone.now(), attempts=0
        )
        for notification in failed:
            audit_record(
                action=AuditAction.NOTIFICATION_RETRIED,
                actor=actor,
                target=notification,
                before={
                    "status": NotificationStatus.FAILED,
                    "attempts": notification.attempts,
                    "last_error": notification.last_error,
                },
                after={"status": NotificationStatus.PENDING, "attempts": 0},
                context=_audit_context(notification),
            )
        _enqueue_after_commit(ids)
    return len(ids)
