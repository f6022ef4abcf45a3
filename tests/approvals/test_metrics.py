"""/metrics: token protection and numbers checked against a hand-computed fixture."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import WebhookNotification
from approvals.models import (
    Channel,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    EscalationTrigger,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    Status,
)
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory, decided_approval

pytestmark = pytest.mark.django_db

TOKEN = "metrics-secret-token"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def _scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_it_does_not_exist_without_a_token(client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header", ["", "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer t\u00f6ken"]
)
def test_it_refuses_a_wrong_token(client, metrics_token, header) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"approval_requests" not in response.content


def test_it_counts_requests_by_outcome_and_how_they_were_decided(client, metrics_token) -> None:
    now = timezone.now()
    t0 = now - timedelta(hours=1)
    rita = UserFactory(username="rita")
    refunds, mailer = AgentFactory(name="refund-bot"), AgentFactory(name="mailer")
    # refund-bot / issue_refund: human approve after 10 s, human deny after 100 s,
    # policy approve after 1 s, one pending.
    for status, seconds, reviewer in (
        (Status.APPROVED, 10, rita),
        (Status.DENIED, 100, rita),
        (Status.APPROVED, 1, None),
    ):
        decided_approval(
            agent=refunds,
            status=status,
            created_at=t0,
            decided_at=t0 + timedelta(seconds=seconds),
            reviewer=reviewer,
        )
    decided_approval(agent=refunds, status=Status.PENDING, created_at=now)
    # mailer / send_email: one expired, one cancelled by the agent, one pending.
    for status in (Status.EXPIRED, Status.CANCELLED):
        decided_approval(
            agent=mailer,
            status=status,
            tool="send_email",
            created_at=t0,
            decided_at=t0 + timedelta(minutes=30),
        )
    decided_approval(agent=mailer, status=Status.PENDING, tool="send_email", created_at=now)

    samples = _scrape(client)

    def requests(agent: str, tool: str, outcome: str, decided_by: str) -> float:
        labels = {"agent": agent, "tool": tool, "outcome": outcome, "decided_by": decided_by}
        return samples.get(("approval_requests_total", tuple(sorted(labels.items()))), 0.0)

    assert requests("refund-bot", "issue_refund", "approved", "human") == 1
    assert requests("refund-bot", "issue_refund", "denied", "human") == 1
    assert requests("refund-bot", "issue_refund", "approved", "policy") == 1
    assert requests("refund-bot", "issue_refund", "pending", "none") == 1
    assert requests("mailer", "send_email", "expired", "deadline") == 1
    assert requests("mailer", "send_email", "cancelled", "agent") == 1
    assert requests("mailer", "send_email", "pending", "none") == 1
    assert sum(v for (name, _), v in samples.items() if name == "approval_requests_total") == 7

    assert samples[("approval_requests_pending", (("agent", "refund-bot"),))] == 1
    assert samples[("approval_requests_pending", (("agent", "mailer"),))] == 1

    def bucket(decided_by: str, le: str) -> float:
        key = ("approval_time_to_decision_seconds_bucket", (("decided_by", decided_by), ("le", le)))
        return samples[key]

    # Human: 10 s and 100 s. Policy: 1 s. Expired and cancelled are not decisions.
    assert [bucket("human", le) for le in ("5.0", "15.0", "60.0", "120.0", "+Inf")] == [
        0,
        1,
        1,
        2,
        2,
    ]
    assert samples[("approval_time_to_decision_seconds_sum", (("decided_by", "human"),))] == 110
    assert samples[("approval_time_to_decision_seconds_count", (("decided_by", "human"),))] == 2
    assert bucket("policy", "5.0") == 1
    assert samples[("approval_time_to_decision_seconds_sum", (("decided_by", "policy"),))] == 1


def test_it_exports_escalations_failures_and_backlog_at_zero_when_nothing_happened(
    client, metrics_token
) -> None:
    samples = _scrape(client)
    for trigger in ("schedule", "manual"):
        assert samples[("approval_escalations_total", (("trigger", trigger),))] == 0
    for channel in ("email", "slack", "console"):
        assert samples[("approval_notification_failures_total", (("channel", channel),))] == 0
        assert samples[("approval_notifications_failed", (("channel", channel),))] == 0
    assert samples[("approval_webhook_backlog", ())] == 0


def test_it_counts_escalations_by_trigger(client, metrics_token) -> None:
    now = timezone.now()
    chain = EscalationChain.objects.create(name="payments")
    first, second = (
        EscalationStep.objects.create(chain=chain, position=position, after_minutes=5 * position)
        for position in (1, 2)
    )
    one, two = ApprovalRequestFactory(), ApprovalRequestFactory()
    # Request one: both steps on schedule. Request two: step one by hand.
    for approval, step, trigger in (
        (one, first, EscalationTrigger.SCHEDULE),
        (one, second, EscalationTrigger.SCHEDULE),
        (two, first, EscalationTrigger.MANUAL),
    ):
        EscalationFiring.objects.create(
            approval=approval, step=step, trigger=trigger, due_at=now, fired_at=now
        )

    samples = _scrape(client)
    assert samples[("approval_escalations_total", (("trigger", "schedule"),))] == 2
    assert samples[("approval_escalations_total", (("trigger", "manual"),))] == 1


def _notification(channel: str, status: str, outcomes: list[str]) -> Notification:
    now = timezone.now()
    row = Notification.objects.create(
        recipient=UserFactory(),
        channel=channel,
        approval=ApprovalRequestFactory(),
        reason="test",
        dedupe_key=str(uuid.uuid4()),
        status=status,
        attempts=len(outcomes),
        created_at=now,
        next_attempt_at=now,
    )
    for number, outcome in enumerate(outcomes, start=1):
        NotificationAttempt.objects.create(
            notification=row, number=number, started_at=now, finished_at=now, outcome=outcome
        )
    return row


def test_it_counts_notification_failures_and_those_still_failed(client, metrics_token) -> None:
    sent, retry, failed = (
        NotificationAttempt.Outcome.SENT,
        NotificationAttempt.Outcome.RETRY,
        NotificationAttempt.Outcome.FAILED,
    )
    # email: one refused for good; one failed, then an operator retried it (pending again);
    # one sent after a retry. slack: one gave up after its retries.
    _notification(Channel.EMAIL, NotificationStatus.FAILED, [failed])
    _notification(Channel.EMAIL, NotificationStatus.PENDING, [failed])
    _notification(Channel.EMAIL, NotificationStatus.SENT, [retry, sent])
    _notification(Channel.SLACK, NotificationStatus.FAILED, [retry, retry, failed])

    samples = _scrape(client)

    def failures(channel: str) -> float:
        return samples[("approval_notification_failures_total", (("channel", channel),))]

    def failed_now(channel: str) -> float:
        return samples[("approval_notifications_failed", (("channel", channel),))]

    # The retried row still counts as a failure that happened: a counter never goes down.
    assert (failures("email"), failures("slack"), failures("console")) == (2, 1, 0)
    assert (failed_now("email"), failed_now("slack"), failed_now("console")) == (1, 1, 0)


def test_it_reports_the_webhook_backlog(client, metrics_token) -> None:
    now = timezone.now()
    agent = AgentFactory(name="aap-bot")

    def event(**fields: object) -> None:
        WebhookNotification.objects.create(
            agent=agent,
            approval=ApprovalRequestFactory(agent=agent),
            body="{}",
            created_at=now,
            deliver_until=now + timedelta(days=1),
            next_attempt_at=now,
            **fields,
        )

    event()  # waiting for its first attempt
    event(attempts=3, last_error="HTTP 500")  # retrying
    event(attempts=1, delivered_at=now)  # delivered
    event(attempts=9, ended_at=now, ended_reason="retry window ended")  # given up on

    assert _scrape(client)[("approval_webhook_backlog", ())] == 2
