"""Presence with a heartbeat: a page that stops pinging (a dead server process) stops "looking"."""

import asyncio
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from approvals.consumers import HEARTBEAT
from approvals.models import ReviewerPresence
from approvals.realtime import render_queue_fragment
from approvals.reviews import check_approval_request_deny, presences_expire
from approvals.selectors import approval_get_for_display, approvals_decorate
from approvals.tasks import expire_stale_presence
from console.celery import app
from tests.conftest import ReviewerSession
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.sockets import next_message_containing
from tests.thread_connections import db_to_thread

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT_SECONDS = 20  # the default: presence lapses after 40 seconds without a ping


@pytest.fixture(autouse=True)
def _heartbeat(settings):
    settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS = HEARTBEAT_SECONDS


def _looking(approval, reviewer, *, channel_name: str, seen_at):
    return ReviewerPresence.objects.create(
        approval=approval, reviewer=reviewer, channel_name=channel_name, seen_at=seen_at
    )


def test_it_shows_presence_until_two_heartbeats_pass_without_a_ping() -> None:
    approval = ApprovalRequestFactory()
    seen_at = timezone.now()
    _looking(approval, UserFactory(username="alice"), channel_name="a", seen_at=seen_at)
    approval = approval_get_for_display(approval_id=approval.pk)

    def viewers_at(later: timedelta) -> list[str]:
        return approvals_decorate([approval], now=seen_at + later)[0].viewers  # type: ignore[attr-defined]

    assert viewers_at(timedelta(seconds=2 * HEARTBEAT_SECONDS - 1)) == ["alice"]
    assert viewers_at(timedelta(seconds=2 * HEARTBEAT_SECONDS)) == []


def test_a_decided_request_shows_nobody_looking() -> None:
    # Before, "Looking now: alice" stayed on the decision page (and came back on every reload)
    # after the request was decided, as if it were still open.
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice, bob]))
    _looking(approval, alice, channel_name="a", seen_at=timezone.now())
    assert approval_get_for_display(approval_id=approval.pk).viewers == ["alice"]  # type: ignore[attr-defined]

    check_approval_request_deny(approval=approval, reviewer=bob, reason="Already refunded.")

    decided = approval_get_for_display(approval_id=approval.pk)
    assert decided.viewers == []  # type: ignore[attr-defined]
    # The push that tells open pages of the decision also empties their "Looking now".
    pushed = render_queue_fragment(decided)
    assert f'<span id="presence-{approval.code}" class="presence" hx-swap-oob="true"></span>' in (
        pushed
    )
    assert "Looking now" not in pushed


def test_it_sweeps_only_presence_whose_heartbeat_stopped() -> None:
    approval = ApprovalRequestFactory()
    now = timezone.now()
    _looking(approval, UserFactory(username="dead"), channel_name="dead", seen_at=now)
    _looking(
        approval,
        UserFactory(username="alive"),
        channel_name="alive",
        seen_at=now + timedelta(seconds=HEARTBEAT_SECONDS),
    )
    assert presences_expire(now=now + timedelta(seconds=2 * HEARTBEAT_SECONDS - 1)) == 0
    assert presences_expire(now=now + timedelta(seconds=2 * HEARTBEAT_SECONDS)) == 1
    assert list(ReviewerPresence.objects.values_list("channel_name", flat=True)) == ["alive"]


def test_beat_schedules_the_presence_sweep() -> None:
    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["expire stale reviewer presence"]
    assert entry["task"] == "approvals.expire_stale_presence"


def test_a_worker_sweeps_stale_presence() -> None:
    approval = ApprovalRequestFactory()
    stale = timezone.now() - timedelta(seconds=2 * HEARTBEAT_SECONDS + 1)
    _looking(approval, UserFactory(), channel_name="gone", seen_at=stale)
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        expire_stale_presence.delay()
        deadline = time.monotonic() + 15
        while ReviewerPresence.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not ReviewerPresence.objects.exists()


async def _until_true(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await db_to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


def test_the_sweep_tells_reviewers_nobody_is_looking_any_more(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice, bob]))
    # bob's page lived on a server process that died: its row stayed, its pings stopped.
    _looking(
        approval,
        bob,
        channel_name="dead-process",
        seen_at=timezone.now() - timedelta(seconds=2 * HEARTBEAT_SECONDS + 1),
    )
    session = ReviewerSession(live_console.url, "alice")

    async def scenario() -> str:
        async with session.socket() as ws:
            await db_to_thread(presences_expire)
            return await next_message_containing(ws, f'id="presence-{approval.code}"')

    pushed = asyncio.run(scenario())
    assert "bob" not in pushed and "Looking now" not in pushed
    session.close()


def test_a_ping_refreshes_presence_over_a_real_websocket(live_console) -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice]))
    session = ReviewerSession(live_console.url, "alice")
    long_ago = timezone.now() - timedelta(hours=1)

    def entered() -> bool:
        return ReviewerPresence.objects.filter(approval=approval).exists()

    def refreshed() -> bool:
        presence = ReviewerPresence.objects.filter(approval=approval).first()
        return presence is not None and presence.seen_at > long_ago + timedelta(minutes=30)

    async def scenario() -> tuple[bool, bool]:
        async with session.socket(approval.code) as ws:
            assert await _until_true(entered)
            await db_to_thread(
                ReviewerPresence.objects.filter(approval=approval).update, seen_at=long_ago
            )
            await ws.send("not a heartbeat")
            ignored = not await _until_true(refreshed, timeout=0.5)
            await ws.send(HEARTBEAT)
            return ignored, await _until_true(refreshed)

    ignored, was_refreshed = asyncio.run(scenario())
    assert ignored  # anything but the heartbeat changes nothing
    assert was_refreshed
    session.close()


def test_a_ping_brings_back_presence_that_a_sweep_removed(live_console) -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice]))
    session = ReviewerSession(live_console.url, "alice")

    def present() -> bool:
        return ReviewerPresence.objects.filter(approval=approval, reviewer=alice).exists()

    async def scenario() -> tuple[bool, bool]:
        async with session.socket(approval.code) as ws:
            assert await _until_true(present)
            # A sweep on a wrong clock (or a long pause) removed a live page's row.
            await db_to_thread(ReviewerPresence.objects.all().delete)
            await ws.send(HEARTBEAT)
            back = await _until_true(present)
        gone = await _until_true(lambda: not present())
        return back, gone

    back, gone = asyncio.run(scenario())
    assert back and gone
    session.close()


def test_a_late_ping_shows_the_hidden_presence_again(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice, bob]))
    alice_session = ReviewerSession(live_console.url, "alice")
    bob_session = ReviewerSession(live_console.url, "bob")
    looking = f'<span id="presence-{approval.code}" class="presence" hx-swap-oob="true">Looking'

    async def scenario() -> str:
        async with (
            bob_session.socket() as queue_ws,
            alice_session.socket(approval.code) as page_ws,
        ):
            await next_message_containing(queue_ws, looking)
            # alice's tab was paused past two heartbeats: her presence is hidden now.
            await db_to_thread(
                ReviewerPresence.objects.update,
                seen_at=timezone.now() - timedelta(seconds=2 * HEARTBEAT_SECONDS + 1),
            )
            await page_ws.send(HEARTBEAT)
            return await next_message_containing(queue_ws, looking)

    assert "Looking now: alice" in asyncio.run(scenario())
    alice_session.close()
    bob_session.close()
