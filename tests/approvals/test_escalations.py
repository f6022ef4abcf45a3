"""Escalation timelines on a controllable clock: `now` is passed into the services."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from approvals.escalations import (
    approval_request_escalate_next_step,
    escalations_fire_due,
    step_schedule,
)
from approvals.exceptions import EscalationUnavailable, NotAllowed
from approvals.models import (
    ApprovalEvent,
    Channel,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    EscalationTrigger,
    Notification,
    NotificationPreference,
    NotificationStatus,
    Status,
)
from approvals.services import approval_requests_expire_overdue
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.races import raised, run_at_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    carol = UserFactory(username="carol")
    return alice, bob, carol


@pytest.fixture
def chain(people):
    """5 min: first line (console + email); 10 min: hand to second line; 60 min: the manager.
    The last step is after the 30-minute deadline, so it is clamped to just before it."""
    alice, bob, carol = people
    first_line = TeamFactory(name="first-line", members=[alice])
    second_line = TeamFactory(name="second-line", members=[bob])
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(
        chain=chain, position=1, after_minutes=5, notify_team=first_line, notify_slack=False
    )
    EscalationStep.objects.create(
        chain=chain, position=2, after_minutes=10, notify_team=second_line, reassign_to=second_line
    )
    EscalationStep.objects.create(
        chain=chain, position=3, after_minutes=60, notify_user=carol, notify_slack=False
    )
    return chain


def _approval_created_at(created_at: datetime, **fields):
    approval = ApprovalRequestFactory(deadline_at=created_at + timedelta(minutes=30), **fields)
    type(approval).objects.filter(pk=approval.pk).update(created_at=created_at)
    approval.refresh_from_db()
    return approval


def _fired(approval) -> list[int]:
    return list(
        EscalationFiring.objects.filter(approval=approval)
        .order_by("fired_at", "id")
        .values_list("step__position", flat=True)
    )


def test_each_step_fires_once_in_order_before_the_deadline(chain, people, settings) -> None:
    alice, _, _ = people
    margin = timedelta(seconds=settings.ESCALATION_DEADLINE_MARGIN_SECONDS)
    start = timezone.now() - timedelta(hours=1)
    approval = _approval_created_at(start, escalation_chain=chain)
    deadline = approval.deadline_at

    timeline = [
        (4, []),
        (5, [1]),
        (6, [1]),
        (10, [1, 2]),
        (20, [1, 2]),
        (29, [1, 2, 3]),  # 60 min clamped to 30 min minus the 60 s margin
        (29.5, [1, 2, 3]),
        (31, [1, 2, 3]),
    ]
    for minute, expected in timeline:
        escalations_fire_due(now=start + timedelta(minutes=minute))
        assert _fired(approval) == expected, f"at minute {minute}"

    for firing in EscalationFiring.objects.filter(approval=approval):
        assert firing.fired_at < deadline
        assert firing.due_at <= deadline - margin
    approval.refresh_from_db()
    assert approval.team.name == "second-line"
    assert approval.status == Status.PENDING
    console = Notification.objects.filter(approval=approval, channel=Channel.CONSOLE)
    assert sorted(console.values_list("recipient__username", flat=True)) == [
        "alice",
        "bob",
        "carol",
    ]
    assert not Notification.objects.filter(
        approval=approval, recipient=alice, channel=Channel.SLACK
    ).exists()
    assert ApprovalEvent.objects.filter(approval=approval, kind="escalated").count() == 3


def test_catch_up_after_downtime_sends_nothing_twice(chain) -> None:
    start = timezone.now() - timedelta(hours=1)
    approval = _approval_created_at(start, escalation_chain=chain)

    # Beat was down for 25 minutes: both missed steps fire now, once each, in order.
    assert escalations_fire_due(now=start + timedelta(minutes=25)) == 2
    rows_after_catch_up = Notification.objects.filter(approval=approval).count()
    # A second beat (or the same one, restarted) sweeping the same moment changes nothing.
    assert escalations_fire_due(now=start + timedelta(minutes=25)) == 0
    assert escalations_fire_due(now=start + timedelta(minutes=26)) == 0

    assert _fired(approval) == [1, 2]
    assert Notification.objects.filter(approval=approval).count() == rows_after_catch_up
    keys = list(Notification.objects.filter(approval=approval).values_list("dedupe_key", flat=True))
    assert len(keys) == len(set(keys))


def test_a_request_decided_or_past_its_deadline_does_not_escalate(chain) -> None:
    start = timezone.now() - timedelta(hours=1)
    decided = _approval_created_at(start, escalation_chain=chain, status=Status.DENIED)
    overdue = _approval_created_at(start, escalation_chain=chain)

    escalations_fire_due(now=start + timedelta(minutes=40))

    assert _fired(decided) == []
    assert _fired(overdue) == []


def test_the_schedule_is_clamped_inside_a_short_window(chain, settings) -> None:
    settings.ESCALATION_DEADLINE_MARGIN_SECONDS = 60
    start = timezone.now()
    approval = ApprovalRequestFactory(deadline_at=start + timedelta(seconds=30))
    approval.created_at = start

    schedule = step_schedule(approval=approval, steps=list(chain.steps.all()))

    # The window is shorter than the margin: everything fires at once, at creation.
    assert [due for _, due in schedule] == [start, start, start]


def test_the_default_chain_applies_when_the_policy_names_none(chain, settings) -> None:
    settings.ESCALATION_DEFAULT_CHAIN = "payments"
    start = timezone.now() - timedelta(hours=1)
    approval = _approval_created_at(start)

    escalations_fire_due(now=start + timedelta(minutes=5))

    assert _fired(approval) == [1]


def test_quiet_hours_hold_email_except_the_last_step(chain, people) -> None:
    _, bob, carol = people
    start = timezone.now().replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=1)
    quiet = {"quiet_hours_start": time(22, 0), "quiet_hours_end": time(7, 0), "time_zone": "UTC"}
    NotificationPreference.objects.create(user=bob, **quiet)
    NotificationPreference.objects.create(user=carol, **quiet)
    approval = _approval_created_at(start, escalation_chain=chain)

    escalations_fire_due(now=start + timedelta(minutes=29))

    bob_email = Notification.objects.get(approval=approval, recipient=bob, channel=Channel.EMAIL)
    carol_email = Notification.objects.get(
        approval=approval, recipient=carol, channel=Channel.EMAIL
    )
    assert (bob_email.status, bob_email.last_error) == (NotificationStatus.SKIPPED, "quiet hours")
    assert carol_email.status == NotificationStatus.PENDING  # the last step before the deadline
    bob_console = Notification.objects.get(
        approval=approval, recipient=bob, channel=Channel.CONSOLE
    )
    assert bob_console.status == NotificationStatus.SENT


def test_escalating_by_hand_fires_the_next_step_now(chain, people) -> None:
    alice, _, _ = people
    approval = ApprovalRequestFactory(escalation_chain=chain, team=TeamFactory(name="first-line"))

    firing = approval_request_escalate_next_step(
        approval=approval, actor=alice, note="Customer on the phone"
    )

    assert (firing.step.position, firing.trigger) == (1, EscalationTrigger.MANUAL)
    event = ApprovalEvent.objects.get(approval=approval, kind="escalated")
    assert event.actor_user == alice
    assert "Customer on the phone" in event.note
    assert (
        approval_request_escalate_next_step(approval=approval, actor=alice, note="").step.position
        == 2
    )
    # The schedule later skips what was escalated by hand.
    escalations_fire_due(now=approval.created_at + timedelta(minutes=10))
    assert _fired(approval) == [1, 2]


def test_escalating_by_hand_needs_a_chain_and_a_next_step(chain, people) -> None:
    alice, _, _ = people
    first_line = TeamFactory(name="first-line")
    without_chain = ApprovalRequestFactory(team=first_line)
    with pytest.raises(EscalationUnavailable):
        approval_request_escalate_next_step(approval=without_chain, actor=alice, note="")

    approval = ApprovalRequestFactory(escalation_chain=chain, team=first_line)
    for _ in range(3):
        approval_request_escalate_next_step(approval=approval, actor=alice, note="")
    with pytest.raises(EscalationUnavailable):
        approval_request_escalate_next_step(approval=approval, actor=alice, note="")


def test_only_the_team_or_staff_may_escalate(chain, people) -> None:
    alice, bob, _ = people
    approval = ApprovalRequestFactory(escalation_chain=chain, team=TeamFactory(members=[alice]))

    with pytest.raises(NotAllowed):
        approval_request_escalate_next_step(approval=approval, actor=bob, note="")
    bob.is_staff = True
    bob.save()
    assert (
        approval_request_escalate_next_step(approval=approval, actor=bob, note="").step.position
        == 1
    )


def test_the_agent_learns_why_at_the_deadline(chain) -> None:
    start = timezone.now() - timedelta(hours=1)
    approval = _approval_created_at(start, escalation_chain=chain)
    escalations_fire_due(now=start + timedelta(minutes=29))

    approval_requests_expire_overdue()

    approval.refresh_from_db()
    assert approval.status == Status.EXPIRED
    assert approval.decision.note == (
        "No decision before the deadline. Escalated 3 times; nobody decided."
    )


def test_the_escalate_endpoint(client, chain, people) -> None:
    alice, bob, _ = people
    approval = ApprovalRequestFactory(escalation_chain=chain, team=TeamFactory(members=[alice]))
    url = f"/requests/{approval.code}/escalate-next"

    client.force_login(bob)
    # Not bob's team: the request is hidden from him, exactly like one that does not exist.
    assert client.post(url, {"note": "not mine"}).status_code == 404
    client.force_login(alice)
    response = client.post(url, {"note": "Nobody answers"})
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{approval.code}/"
    assert _fired(approval) == [1]
    assert client.get(url).status_code == 405
    other = ApprovalRequestFactory(team=approval.team)
    assert client.post(f"/requests/{other.code}/escalate-next", {}).status_code == 409


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_fire_each_step_once(chain) -> None:
    start = timezone.now() - timedelta(hours=1)
    approval = _approval_created_at(start, escalation_chain=chain)

    def sweep() -> None:
        escalations_fire_due(now=start + timedelta(minutes=29))

    assert raised(run_at_once([sweep] * 3, timeout=30)) == []
    assert _fired(approval) == [1, 2, 3]
    keys = list(Notification.objects.filter(approval=approval).values_list("dedupe_key", flat=True))
    assert len(keys) == len(set(keys))
    assert ApprovalEvent.objects.filter(approval=approval, kind="escalated").count() == 3
