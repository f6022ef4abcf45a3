"""A Slack post that reached Slack is never posted again: a retry finds it by its metadata in the
reviewer's direct message and adopts it. The real slack-sdk against a local Slack API
(tests/notify_servers.py)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import (
    Channel,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    SlackMessage,
)
from approvals.notifications import (
    NotificationOutbox,
    notifications_on_submitted,
    notifications_retry_failed,
)
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory, reviewer_with_slack
from tests.notify_servers import Answer, slack_api  # noqa: F401

pytestmark = pytest.mark.django_db

LATER = timedelta(hours=1)  # past any backoff and lease
EVENT_TYPE = "approval_notification"  # what Slack apps reading the messages see


def _routed_to_sam():
    sam = reviewer_with_slack("sam", "U0SAM")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[sam]))
    with transaction.atomic():
        created = notifications_on_submitted(approval=approval)
    return approval, next(n for n in created if n.channel == Channel.SLACK)


def _deliver(row: Notification, at) -> None:
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=at)


def test_a_post_carries_metadata_naming_its_outbox_row(slack_api) -> None:  # noqa: F811
    approval, row = _routed_to_sam()

    _deliver(row, timezone.now())

    [call] = slack_api.calls_to("chat.postMessage")
    assert call.body["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {"notification_id": row.pk, "approval_code": str(approval.code)},
    }
    # The first try looks for nothing: nothing can have been posted before it.
    assert slack_api.calls_to("conversations.history") == []
    row.refresh_from_db()
    assert row.first_attempt_at is not None


def test_a_post_whose_answer_was_lost_is_adopted_not_posted_again(slack_api) -> None:  # noqa: F811
    approval, row = _routed_to_sam()
    slack_api.lose_answers = 1  # Slack stores the message; the connection drops before its answer
    now = timezone.now()

    _deliver(row, now)
    row.refresh_from_db()
    assert row.status == NotificationStatus.PENDING  # the worker saw only an error

    _deliver(row, now + LATER)

    [message] = slack_api.messages_in("D0001")
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    stored = SlackMessage.objects.get(approval=approval)
    assert (stored.channel, stored.ts) == ("D0001", message["ts"])
    [history] = slack_api.calls_to("conversations.history")
    assert history.body["include_all_metadata"] == "1"
    assert float(history.body["oldest"]) <= row.first_attempt_at.timestamp()


def test_a_worker_that_died_before_recording_the_post_adopts_it(slack_api, monkeypatch) -> None:  # noqa: F811
    approval, row = _routed_to_sam()
    recording = NotificationOutbox.after_sent
    died: list[bool] = []

    def dies_once(self, row, receipt):
        if not died:
            died.append(True)
            raise SystemExit("worker killed after Slack accepted the post")
        return recording(self, row, receipt)

    monkeypatch.setattr(NotificationOutbox, "after_sent", dies_once)
    now = timezone.now()
    with pytest.raises(SystemExit):
        _deliver(row, now)
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENDING  # its lease runs out; then it is tried again

    _deliver(row, now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS + 1))

    [message] = slack_api.messages_in("D0001")
    row.refresh_from_db()
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)
    assert SlackMessage.objects.get(approval=approval).ts == message["ts"]
    # A decision then updates the one message there is.
    approval_request_approve(approval=approval, reviewer=UserFactory(username="rita"))
    update = Notification.objects.get(approval=approval, reason="resolved")
    _deliver(update, timezone.now())
    [edit] = slack_api.calls_to("chat.update")
    assert (edit.body["channel"], edit.body["ts"]) == ("D0001", message["ts"])


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("conversations.history", (500, {}, {"ok": False, "error": "internal_error"})),
        ("conversations.history", (200, {}, {"ok": False, "error": "missing_scope"})),
        ("conversations.history", (429, {"Retry-After": "600"}, {"ok": False})),
        ("conversations.open", (200, {}, {"ok": False, "error": "missing_scope"})),
    ],
)
def test_a_lookup_that_fails_posts_nothing_and_leaves_the_row_for_later(
    slack_api,  # noqa: F811
    method,
    answer,
) -> None:
    _, row = _routed_to_sam()
    slack_api.lose_answers = 1
    now = timezone.now()
    _deliver(row, now)
    slack_api.scripted_for[method] = [answer]

    _deliver(row, now + LATER)

    assert len(slack_api.calls_to("chat.postMessage")) == 1  # the lost one only
    row.refresh_from_db()
    assert row.status == NotificationStatus.PENDING
    assert "could not check Slack for an earlier post" in row.last_error
    assert [attempt.outcome for attempt in row.attempt_rows.all()] == [
        NotificationAttempt.Outcome.RETRY,
        NotificationAttempt.Outcome.RETRY,
    ]
    if answer[0] == 429:
        assert row.next_attempt_at >= now + LATER + timedelta(seconds=600)

    # Slack answers again: the message the first try posted is found, and nothing is posted.
    _deliver(row, now + 2 * LATER)

    assert len(slack_api.messages_in("D0001")) == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT


def test_a_retry_that_finds_nothing_posts_once(slack_api) -> None:  # noqa: F811
    _, row = _routed_to_sam()
    slack_api.scripted.append((429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}))
    now = timezone.now()

    _deliver(row, now)
    _deliver(row, now + LATER)

    assert len(slack_api.calls_to("conversations.history")) == 1
    assert len(slack_api.messages_in("D0001")) == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT


def test_the_earlier_post_is_found_behind_pages_of_newer_messages(slack_api) -> None:  # noqa: F811
    approval, row = _routed_to_sam()
    slack_api.lose_answers = 1
    now = timezone.now()
    _deliver(row, now)
    [lost] = slack_api.messages_in("D0001")
    # Meanwhile the app told sam of 250 other things, some with metadata of other rows.
    later_ts = float(lost["ts"])
    for number in range(250):
        metadata = {
            "event_type": EVENT_TYPE,
            "event_payload": {"notification_id": row.pk + 1 + number, "approval_code": "x"},
        }
        slack_api.conversations["D0001"].append(
            {"type": "message", "ts": f"{later_ts + 1 + number:.6f}", "metadata": metadata}
        )

    _deliver(row, now + LATER)

    assert len(slack_api.calls_to("conversations.history")) == 3
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert SlackMessage.objects.get(approval=approval).ts == lost["ts"]


def test_an_operators_retry_after_failed_lookups_adopts_the_first_post(slack_api) -> None:  # noqa: F811
    _, row = _routed_to_sam()
    slack_api.lose_answers = 1
    refused: Answer = (200, {}, {"ok": False, "error": "missing_scope"})
    # Every try after the first looks, and is refused: the app lacks im:history.
    lookups = settings.NOTIFICATION_MAX_ATTEMPTS - 1
    slack_api.scripted_for["conversations.history"] = [refused] * lookups
    now = timezone.now()
    for attempt in range(settings.NOTIFICATION_MAX_ATTEMPTS):
        _deliver(row, now + attempt * LATER)
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert "could not check Slack for an earlier post" in row.last_error

    # The scope is added; an operator sends it again.
    notifications_retry_failed(notification_ids=[row.pk])
    _deliver(row, timezone.now() + LATER)

    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert len(slack_api.messages_in("D0001")) == 1
    numbers = list(row.attempt_rows.values_list("number", flat=True))
    assert numbers == list(range(1, settings.NOTIFICATION_MAX_ATTEMPTS + 2))
