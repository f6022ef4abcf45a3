"""Mail that people keep reading: one message per person and request, and email digests.

Mail goes to a real SMTP server (aiosmtpd) on loopback, through the one outbox.
"""

from datetime import timedelta

import pytest
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from approvals.digests import email_digests_create
from approvals.escalations import escalations_fire_due
from approvals.models import (
    ApprovalRequest,
    Channel,
    EmailDigest,
    EmailMode,
    EscalationChain,
    EscalationStep,
    Notification,
    NotificationPreference,
    NotificationStatus,
)
from approvals.notifications import notifications_on_submitted
from approvals.outbox import KIND_EMAIL_DIGEST, KIND_NOTIFICATION, outbox_deliver, outbox_due
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def _deliver_pending_email() -> None:
    for row_id in Notification.objects.filter(
        channel=Channel.EMAIL, status=NotificationStatus.PENDING
    ).values_list("pk", flat=True):
        outbox_deliver(kind=KIND_NOTIFICATION, row_id=row_id)


def _held(team, *, created_at, **fields) -> ApprovalRequest:
    approval = ApprovalRequestFactory(
        team=team, deadline_at=created_at + timedelta(minutes=30), **fields
    )
    ApprovalRequest.objects.filter(pk=approval.pk).update(created_at=created_at)
    approval.refresh_from_db()
    with transaction.atomic():
        notifications_on_submitted(approval=approval)
    return approval


def _chain(*, steps: list[dict]) -> EscalationChain:
    chain = EscalationChain.objects.create(name="payments")
    for position, step in enumerate(steps, start=1):
        EscalationStep.objects.create(
            chain=chain, position=position, notify_slack=False, notify_console=False, **step
        )
    return chain


# --- One person reached twice for one request: one message -----------------------------------


def test_it_sends_a_team_member_named_in_an_escalation_step_one_email(smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice", email="alice@example.test")
    carol = UserFactory(username="carol", email="carol@example.test")
    team = TeamFactory(name="payments", members=[alice])
    chain = _chain(
        steps=[
            {"after_minutes": 1, "notify_user": alice},
            {"after_minutes": 20, "notify_user": carol},
        ]
    )
    start = timezone.now() - timedelta(minutes=5)
    approval = _held(team, created_at=start, escalation_chain=chain)
    _deliver_pending_email()

    escalations_fire_due(now=start + timedelta(minutes=1))
    _deliver_pending_email()

    assert [m["To"] for m in smtp_server.handler.messages] == ["alice@example.test"]
    routed, escalated = Notification.objects.filter(
        recipient=alice, channel=Channel.EMAIL, approval=approval
    ).order_by("id")
    assert routed.status == NotificationStatus.SENT
    assert escalated.status == NotificationStatus.SKIPPED
    assert escalated.last_error == f"duplicate of #{routed.pk}"


def test_it_sends_again_after_the_fold_window(settings, smtp_server) -> None:  # noqa: F811
    settings.NOTIFICATION_FOLD_WINDOW_SECONDS = 60
    alice = UserFactory(username="alice", email="alice@example.test")
    carol = UserFactory(username="carol", email="carol@example.test")
    team = TeamFactory(name="payments", members=[alice])
    chain = _chain(
        steps=[
            {"after_minutes": 2, "notify_user": alice},
            {"after_minutes": 20, "notify_user": carol},
        ]
    )
    start = timezone.now() - timedelta(minutes=5)
    _held(team, created_at=start, escalation_chain=chain)
    _deliver_pending_email()

    escalations_fire_due(now=start + timedelta(minutes=2))
    _deliver_pending_email()

    assert [m["To"] for m in smtp_server.handler.messages] == ["alice@example.test"] * 2


def test_it_still_sends_the_chains_last_urgent_step(smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice", email="alice@example.test")
    team = TeamFactory(name="payments", members=[alice])
    chain = _chain(steps=[{"after_minutes": 1, "notify_user": alice}])
    start = timezone.now() - timedelta(minutes=5)
    approval = _held(team, created_at=start, escalation_chain=chain)
    _deliver_pending_email()

    escalations_fire_due(now=start + timedelta(minutes=1))
    _deliver_pending_email()

    assert [m["To"] for m in smtp_server.handler.messages] == ["alice@example.test"] * 2
    assert not Notification.objects.filter(approval=approval, status=NotificationStatus.SKIPPED)


# --- Digests -----------------------------------------------------------------------------------


def _digest_reviewer(minutes: int = 15):
    alice = UserFactory(username="alice", email="alice@example.test")
    NotificationPreference.objects.create(
        user=alice, email_mode=EmailMode.DIGEST, digest_minutes=minutes
    )
    return alice, TeamFactory(name="payments", members=[alice])


def test_it_collects_held_requests_into_one_digest_riskiest_first(settings, smtp_server) -> None:  # noqa: F811
    settings.SITE_URL = "https://console.example.test"
    _, team = _digest_reviewer()
    now = timezone.now()
    low = _held(team, created_at=now, impact="low", tool="send_email", summary="Say <b>hi</b>")
    critical = _held(team, created_at=now, impact="critical", tool="deploy")
    high = _held(team, created_at=now, impact="high", tool="issue_refund")
    decided = _held(team, created_at=now, impact="critical", tool="drop_table")
    ApprovalRequest.objects.filter(pk=decided.pk).update(status="denied")

    # Nothing goes out one by one.
    assert not Notification.objects.filter(channel=Channel.EMAIL, status=NotificationStatus.PENDING)
    _deliver_pending_email()
    assert smtp_server.handler.messages == []

    [digest] = email_digests_create(now=now)
    assert outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk) is None

    [message] = smtp_server.handler.messages
    assert message["To"] == "alice@example.test"
    assert "3 requests waiting" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    links = [f"https://console.example.test/requests/{a.code}/" for a in (critical, high, low)]
    for body in (text, html):
        positions = [body.index(link) for link in links]
        assert positions == sorted(positions), "riskiest first"
        assert str(decided.code) not in body and "drop_table" not in body
        assert "https://console.example.test/notifications/preferences" in body
    # Agent text stays escaped and marked as the agent's.
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in html and "<b>hi</b>" not in html
    assert "    | Say <b>hi</b>" in text
    digest.refresh_from_db()
    assert digest.status == NotificationStatus.SENT
    statuses = dict(
        Notification.objects.filter(channel=Channel.EMAIL).values_list("approval_id", "status")
    )
    assert statuses == {
        low.pk: NotificationStatus.SENT,
        critical.pk: NotificationStatus.SENT,
        high.pk: NotificationStatus.SENT,
        decided.pk: NotificationStatus.SKIPPED,
    }


def test_it_sends_a_digest_once_per_interval(smtp_server) -> None:  # noqa: F811
    _, team = _digest_reviewer(minutes=15)
    now = timezone.now()
    _held(team, created_at=now)
    [first] = email_digests_create(now=now)
    _held(team, created_at=now)

    assert email_digests_create(now=now + timedelta(minutes=14)) == []
    [second] = email_digests_create(now=now + timedelta(minutes=15))
    assert second.notifications.count() == 1
    assert first.notifications.count() == 1


def test_it_skips_a_digest_whose_requests_were_all_decided(smtp_server) -> None:  # noqa: F811
    _, team = _digest_reviewer()
    now = timezone.now()
    approval = _held(team, created_at=now)
    [digest] = email_digests_create(now=now)
    ApprovalRequest.objects.filter(pk=approval.pk).update(status="approved")

    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk)

    assert smtp_server.handler.messages == []
    digest.refresh_from_db()
    assert digest.status == NotificationStatus.SKIPPED


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def test_a_digest_survives_a_worker_killed_mid_send(settings, smtp_server, monkeypatch) -> None:  # noqa: F811
    _, team = _digest_reviewer()
    now = timezone.now()
    _held(team, created_at=now)
    [digest] = email_digests_create(now=now)

    real_send = EmailMultiAlternatives.send

    def killed(self, fail_silently=False):
        raise WorkerKilled

    monkeypatch.setattr(EmailMultiAlternatives, "send", killed)
    with pytest.raises(WorkerKilled):
        outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk, now=now)
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    digest.refresh_from_db()
    assert digest.status == NotificationStatus.SENDING

    after_lease = now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS + 1)
    assert outbox_due(kind=KIND_EMAIL_DIGEST, now=after_lease) == [digest.pk]
    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk, now=after_lease)

    assert len(smtp_server.handler.messages) == 1
    digest.refresh_from_db()
    assert digest.status == NotificationStatus.SENT


def test_a_digest_sent_again_after_a_killed_worker_keeps_its_message_id(
    settings,
    smtp_server,  # noqa: F811
    monkeypatch,
) -> None:
    _, team = _digest_reviewer()
    now = timezone.now()
    _held(team, created_at=now)
    [digest] = email_digests_create(now=now)
    real_send = EmailMultiAlternatives.send

    def accepted_then_killed(self, fail_silently=False):
        real_send(self, fail_silently)
        raise WorkerKilled

    monkeypatch.setattr(EmailMultiAlternatives, "send", accepted_then_killed)
    with pytest.raises(WorkerKilled):
        outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk, now=now)
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    after_lease = now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS + 1)
    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk, now=after_lease)

    first, again = smtp_server.handler.messages
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith(f"<digest.{digest.pk}.")
    digest.refresh_from_db()
    assert digest.status == NotificationStatus.SENT


def test_the_last_urgent_step_skips_the_digest(smtp_server) -> None:  # noqa: F811
    alice, team = _digest_reviewer()
    chain = _chain(steps=[{"after_minutes": 1, "notify_user": alice}])
    start = timezone.now() - timedelta(minutes=5)
    _held(team, created_at=start, escalation_chain=chain)

    escalations_fire_due(now=start + timedelta(minutes=1))
    _deliver_pending_email()

    assert [m["To"] for m in smtp_server.handler.messages] == ["alice@example.test"]
    assert EmailDigest.objects.count() == 0


# --- The preferences form ----------------------------------------------------------------------


def test_it_saves_the_email_mode_from_the_preferences_page(client) -> None:
    alice = UserFactory(username="alice")
    client.force_login(alice)

    page = client.get("/notifications/preferences")
    assert b'name="email_mode"' in page.content and b'name="digest_minutes"' in page.content
    assert b"Recommended if you review many requests" in page.content

    response = client.post(
        "/notifications/preferences",
        {"email_enabled": "on", "time_zone": "UTC", "email_mode": "digest", "digest_minutes": "10"},
    )
    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=alice)
    assert (preference.email_mode, preference.digest_minutes) == (EmailMode.DIGEST, 10)

    bad = client.post(
        "/notifications/preferences",
        {"time_zone": "UTC", "email_mode": "digest", "digest_minutes": "1"},
    )
    assert bad.status_code == 400
    preference.refresh_from_db()
    assert preference.digest_minutes == 10


def test_a_busy_hour_switches_a_reviewer_to_a_digest_and_says_so(settings, smtp_server) -> None:  # noqa: F811
    settings.NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR = 2
    settings.NOTIFICATION_AUTO_DIGEST_MINUTES = 15
    alice = UserFactory(username="alice", email="alice@example.test")
    team = TeamFactory(name="payments", members=[alice])
    now = timezone.now()
    for _ in range(2):
        _held(team, created_at=now)
    third = _held(team, created_at=now + timedelta(minutes=1), tool="third_tool")
    _deliver_pending_email()
    assert len(smtp_server.handler.messages) == 2

    [digest] = email_digests_create(now=now)
    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk)

    assert len(smtp_server.handler.messages) == 3
    text = smtp_server.handler.messages[2].get_body(preferencelist=("plain",)).get_content()
    assert "third_tool" in text and str(third.code) in text
    assert "switched you to this list, every 15 minutes" in text
    assert "/notifications/preferences" in text
    # Its choice stays "immediate": only the rest of this hour is collected.
    assert not NotificationPreference.objects.filter(user=alice).exists()
