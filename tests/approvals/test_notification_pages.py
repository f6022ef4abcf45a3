"""The reviewer's notification list, the browser feed and the preferences page."""

from datetime import time

import pytest
from django.db import transaction

from approvals.models import Channel, NotificationPreference
from approvals.notifications import notifications_create
from tests.factories import ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


def _console_notification(user, **approval_fields):
    approval = ApprovalRequestFactory(**approval_fields)
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[user], channels=[Channel.CONSOLE], reason="routed"
        )
    return row


def test_it_lists_only_my_notifications_escaped(client) -> None:
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    mine = _console_notification(alice, summary="<script>alert(1)</script> refund")
    theirs = _console_notification(bob, summary="bob's request")
    client.force_login(alice)

    page = client.get("/notifications/").content.decode()

    assert f'id="notification-{mine.pk}"' in page
    assert f'id="notification-{theirs.pk}"' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; refund" in page
    assert "<script>alert(1)</script>" not in page


def test_the_feed_returns_unread_notifications_after_an_id(client) -> None:
    alice = UserFactory(username="alice")
    first = _console_notification(alice, summary="first")
    second = _console_notification(alice, summary="second")
    client.force_login(alice)

    items = client.get("/notifications/feed", {"after": first.pk}).json()["notifications"]
    assert [item["id"] for item in items] == [second.pk]
    assert items[0]["url"] == f"/requests/{second.approval.code}/"
    assert client.get("/notifications/feed", {"after": "x"}).status_code == 400

    client.post("/notifications/read")
    assert client.get("/notifications/feed", {"after": 0}).json() == {"notifications": []}


def test_the_feed_needs_a_login(client) -> None:
    assert client.get("/notifications/feed").status_code == 302


def test_a_reviewer_sets_channels_and_quiet_hours(client) -> None:
    alice = UserFactory(username="alice")
    client.force_login(alice)

    response = client.post(
        "/notifications/preferences",
        {
            "email_enabled": "on",
            "console_enabled": "on",
            "slack_user_id": "U0ALICE",
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:00",
            "time_zone": "Europe/Berlin",
        },
    )

    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=alice)
    assert (preference.email_enabled, preference.slack_enabled) == (True, False)
    assert (preference.quiet_hours_start, preference.quiet_hours_end) == (time(22), time(7))
    assert preference.time_zone == "Europe/Berlin"
    bad = client.post("/notifications/preferences", {"time_zone": "Mars/Olympus"})
    assert bad.status_code == 400


def test_it_lists_each_request_once_with_its_steps(client) -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory(summary="Refund order 9.")
    with transaction.atomic():
        [routed] = notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.CONSOLE], reason="routed"
        )
        [escalated] = notifications_create(
            approval=approval,
            recipients=[alice],
            channels=[Channel.CONSOLE],
            reason="escalation:1",
        )
    other = _console_notification(alice, summary="Another request.")
    client.force_login(alice)

    page = client.get("/notifications/").content.decode()

    assert page.count(f'id="notification-group-{approval.code}"') == 1
    assert page.count("Refund order 9.") == 1
    assert f'id="notification-group-{other.approval.code}"' in page
    group = page.split(f'id="notification-group-{approval.code}"')[1].split("</ol>")[0]
    assert group.index(f'id="notification-{routed.pk}"') < group.index(
        f'id="notification-{escalated.pk}"'
    )
    assert "routed to your team" in group and "escalated to you" in group
    # The request notified last comes first.
    assert page.index(f"notification-group-{other.approval.code}") < page.index(
        f"notification-group-{approval.code}"
    )
