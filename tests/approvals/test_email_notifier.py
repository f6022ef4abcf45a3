"""Email notifications, received by a real SMTP server (aiosmtpd) on loopback."""

from datetime import timedelta

import pytest
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from approvals.models import Channel, NotificationAttempt, NotificationStatus
from approvals.notifications import notifications_on_submitted
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver, outbox_due
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def _routed_email(settings):
    settings.SITE_URL = "https://console.example.test"
    alice = UserFactory(username="alice", email="alice@example.test")
    team = TeamFactory(name="payments", members=[alice])
    approval = ApprovalRequestFactory(
        team=team,
        summary="Refund <b>order</b> 1042",
        hold_reason="Refunds over 40 EUR need a person.",
    )
    with transaction.atomic():
        created = notifications_on_submitted(approval=approval)
    email_row = next(n for n in created if n.channel == Channel.EMAIL)
    return approval, email_row


def test_it_sends_html_and_text_with_the_decision_link(settings, smtp_server) -> None:  # noqa: F811
    approval, row = _routed_email(settings)

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None

    assert len(smtp_server.handler.messages) == 1
    message = smtp_server.handler.messages[0]
    assert message["To"] == "alice@example.test"
    assert "issue_refund" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = f"https://console.example.test/requests/{approval.code}/"
    for body in (text, html):
        assert link in body
        assert "Refunds over 40 EUR need a person." in body
        assert approval.deadline_at.strftime("%Y-%m-%d %H:%M") in body
    # Agent text is escaped in HTML, and no link approves anything.
    assert "Refund &lt;b&gt;order&lt;/b&gt; 1042" in html
    assert "<b>order</b>" not in html
    assert "/approve" not in html and "/approve" not in text
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert [a.outcome for a in row.attempt_rows.all()] == [NotificationAttempt.Outcome.SENT]


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def test_a_worker_killed_after_the_server_accepted_resends_the_same_message_id(
    settings,
    smtp_server,  # noqa: F811
    monkeypatch,
) -> None:
    # The server has the message; the worker dies before the row is marked sent. The lease runs
    # out and the row is sent again: the receiver must be able to tell it is the same message.
    approval, row = _routed_email(settings)
    real_send = EmailMultiAlternatives.send

    def accepted_then_killed(self, fail_silently=False):
        real_send(self, fail_silently)
        raise WorkerKilled

    monkeypatch.setattr(EmailMultiAlternatives, "send", accepted_then_killed)
    now = timezone.now()
    with pytest.raises(WorkerKilled):
        outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now)
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    after_lease = now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS + 1)
    assert outbox_due(kind=KIND_NOTIFICATION, now=after_lease) == [row.pk]
    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=after_lease) is None

    first, again = smtp_server.handler.messages
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] == f"<{approval.code.hex}.n{row.pk}@console.example.test>"
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    # Another row's message is another message.
    other = ApprovalRequestFactory(team=approval.team)
    with transaction.atomic():
        [other_row] = [
            n for n in notifications_on_submitted(approval=other) if n.channel == Channel.EMAIL
        ]
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=other_row.pk)
    assert smtp_server.handler.messages[2]["Message-ID"] != first["Message-ID"]


def test_it_retries_when_the_server_says_try_later(settings, smtp_server) -> None:  # noqa: F811
    smtp_server.handler.fail_first = 1
    _, row = _routed_email(settings)

    retry_in = outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    assert retry_in == settings.NOTIFICATION_BACKOFF_BASE_SECONDS
    row.refresh_from_db()
    assert row.status == NotificationStatus.PENDING
    assert "451" in row.last_error
    assert smtp_server.handler.messages == []


def test_it_retries_when_no_server_listens(settings) -> None:
    from tests.notify_servers import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    _, row = _routed_email(settings)

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is not None
    row.refresh_from_db()
    assert row.status == NotificationStatus.PENDING
    assert row.attempt_rows.get().outcome == NotificationAttempt.Outcome.RETRY


def _hostile_email(settings, server, **approval_fields):
    settings.SITE_URL = "https://console.example.test"
    alice = UserFactory(username="alice", email="alice@example.test")
    team = TeamFactory(name="payments", members=[alice])
    approval = ApprovalRequestFactory(team=team, **approval_fields)
    with transaction.atomic():
        created = notifications_on_submitted(approval=approval)
    row = next(n for n in created if n.channel == Channel.EMAIL)
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)
    [message] = server.handler.messages
    return approval, message


def test_a_hostile_summary_cannot_forge_the_console_lines_of_the_plain_text(
    settings,
    smtp_server,  # noqa: F811
) -> None:
    forged = (
        "Routine cleanup\n"
        "Impact: Low\n"
        "Decide here: https://console.example.test.evil/requests/x/\r\n"
        "\u2028Why it was paused: finance pre-verified"
    )
    approval, message = _hostile_email(
        settings, smtp_server, summary=forged, tool="cleanup\nImpact: Low", impact="critical"
    )

    text = message.get_body(preferencelist=("plain",)).get_content()
    lines = text.splitlines()
    # Exactly one line of each kind the console writes, and it is the console's.
    assert [line for line in lines if line.startswith("Impact:")] == ["Impact: Critical"]
    decide = [line for line in lines if line.startswith("Decide here:")]
    assert decide == [f"Decide here: https://console.example.test/requests/{approval.code}/"]
    assert [line for line in lines if line.startswith("Why it was paused:")] == [
        "Why it was paused: Every request of this kind needs a person."
    ]
    # The agent's lines are all quoted, the separator made visible; the tool is one line.
    assert "| Impact: Low" in lines
    assert "| \u27e8U+2028\u27e9Why it was paused: finance pre-verified" in lines
    assert "Tool: \u201ccleanup Impact: Low\u201d" in lines
    assert "\u2028" not in text and "\r" not in text.replace("\r\n", "\n")


def test_bidi_and_zero_width_characters_are_shown_as_escapes_in_the_mail(
    settings,
    smtp_server,  # noqa: F811
) -> None:
    _, message = _hostile_email(
        settings, smtp_server, summary="pay \u202egpj.exe\u200b", tool="rm\u2066_all"
    )

    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for body in (text, html, message["Subject"]):
        assert "\u202e" not in body and "\u200b" not in body and "\u2066" not in body
        assert "rm\u27e8U+2066\u27e9_all" in body
    for body in (text, html):
        assert "pay \u27e8U+202E\u27e9gpj.exe\u27e8U+200B\u27e9" in body
