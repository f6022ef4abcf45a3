"""Long-poll waiters: one subscription per process, a dict entry per waiter.

Runs on whichever channel layer the settings choose: the in-memory one (embedded mode) or Redis
pub/sub (REDIS_URL). tests/test_multiprocess.py covers a decision crossing server processes.
"""

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from agents.api.native import approval_request_representation
from agents.services import run_open
from approvals import realtime
from approvals.models import ApprovalRequest, Status
from approvals.selectors import approval_get_for_agent, approval_get_for_reviewer
from approvals.services import (
    approval_request_answer,
    approval_request_approve,
    approval_request_cancel,
    approval_request_create,
    approval_request_deny,
    approval_request_expire_if_overdue,
)
from tests.conftest import _free_port
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    build_submission,
)
from tests.waits import async_wait_until, parked_polls

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 10.0


async def _never_resolved() -> bool:
    return False


async def _until_parked(listener_codes: dict[str, int]) -> None:
    """Wait until exactly the given number of waiters per code are parked."""
    await async_wait_until(
        lambda: all(parked_polls(code) == count for code, count in listener_codes.items()),
        timeout=5,
        what=f"the waiters parking: {listener_codes}",
    )


async def _parked_poll(approval: ApprovalRequest) -> "asyncio.Task[dict[str, Any] | None]":
    """One long poll on `approval`, parked on this loop's listener."""
    waiting = asyncio.create_task(
        realtime.wait_until_resolved(
            code=approval.code, timeout=WAIT_SECONDS, is_resolved=_never_resolved
        )
    )
    await _until_parked({str(approval.code): 1})
    return waiting


def _approve(approval_id: int) -> None:
    try:
        approval = ApprovalRequest.objects.get(pk=approval_id)
        approval_request_approve(approval=approval, reviewer=UserFactory(is_staff=True))
    finally:
        # This runs in a worker thread: its connection must not outlive the test database.
        connections.close_all()


def test_a_decision_wakes_exactly_the_polls_waiting_for_it() -> None:
    decided, other = ApprovalRequestFactory(), ApprovalRequestFactory()

    async def scenario() -> tuple[list[float], int, dict[str, set[asyncio.Future[None]]]]:
        async def wait(code: object) -> float:
            started = time.monotonic()
            await realtime.wait_until_resolved(
                code=code, timeout=WAIT_SECONDS, is_resolved=_never_resolved
            )
            return time.monotonic() - started

        woken = [asyncio.create_task(wait(decided.code)) for _ in range(300)]
        still_waiting = [asyncio.create_task(wait(other.code)) for _ in range(100)]
        await _until_parked({str(decided.code): 300, str(other.code): 100})

        await sync_to_async(_approve)(decided.pk)
        elapsed = await asyncio.wait_for(asyncio.gather(*woken), timeout=5)
        # Kept: that the other polls are *not* woken is what is checked: give a wrong wake-up
        # time to arrive (the right ones took milliseconds).
        await asyncio.sleep(0.2)
        not_woken = sum(not task.done() for task in still_waiting)
        for task in still_waiting:
            task.cancel()
        await asyncio.gather(*still_waiting, return_exceptions=True)
        listener = realtime._listeners[asyncio.get_running_loop()]
        return elapsed, not_woken, dict(listener.waiters)

    elapsed, not_woken, left = asyncio.run(scenario())
    assert max(elapsed) < 3.0  # by the push, not by the 10 s timeout
    assert not_woken == 100  # the other request's polls slept through it
    assert left == {}  # every waiter, woken or cancelled, took its entry with it


def _in_a_run_held_for_a_team() -> ApprovalRequest:
    """A request whose view shows everything a decision's view is built from: a run, a team, a
    policy evaluation, changeable arguments."""
    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="nightly")
    PolicyRuleFactory(tool_glob="deploy", outcome="hold", team=TeamFactory(), name="ops")
    approval, _ = approval_request_create(
        agent=agent,
        idempotency_key="k-1",
        submission=build_submission(
            tool="deploy", arguments={"service": "api", "replicas": 3}, run=str(run.code)
        ),
    )
    return approval


def _question() -> ApprovalRequest:
    question, _ = approval_request_create(
        agent=AgentFactory(),
        idempotency_key="q-1",
        submission=build_submission(
            kind="question",
            tool="ask_human",
            arguments={},
            answer_schema={"type": "object", "properties": {"region": {"type": "string"}}},
        ),
    )
    return question


def _decide(approval_id: int, how: str) -> None:
    try:
        approval = ApprovalRequest.objects.get(pk=approval_id)
        reviewer = UserFactory(is_staff=True)
        # As the reviewer API reads it: with its run, team and policy evaluation loaded.
        as_read = approval_get_for_reviewer(user=reviewer, code=approval.code)
        assert as_read is not None
        if how == "approved":
            approval_request_approve(approval=approval, reviewer=reviewer, note="ok")
        elif how == "approved as the reviewer API reads it":
            approval_request_approve(approval=as_read, reviewer=reviewer, note="ok")
        elif how == "cancelled after a move to another team":
            # The caller's copy still names the old team: the view must show the new one.
            ApprovalRequest.objects.filter(pk=approval_id).update(team=TeamFactory(name="new"))
            approval_request_cancel(approval=as_read, agent=as_read.agent)
        elif how == "approved with changes":
            approval_request_approve(
                approval=approval, reviewer=reviewer, arguments={"service": "web", "replicas": 1}
            )
        elif how == "answered":
            approval_request_answer(approval=approval, reviewer=reviewer, answer={"region": "eu"})
        elif how == "denied":
            approval_request_deny(approval=approval, reviewer=reviewer, reason="Not today.")
        elif how == "cancelled":
            approval_request_cancel(approval=approval, agent=approval.agent)
        else:
            ApprovalRequest.objects.filter(pk=approval_id).update(deadline_at=timezone.now())
            approval.refresh_from_db()
            approval_request_expire_if_overdue(approval=approval)
    finally:
        # This runs in a worker thread: its connection must not outlive the test database.
        connections.close_all()


@pytest.mark.parametrize(
    ("how", "make"),
    [
        ("approved", ApprovalRequestFactory),
        ("approved as the reviewer API reads it", _in_a_run_held_for_a_team),
        ("cancelled after a move to another team", _in_a_run_held_for_a_team),
        ("approved with changes", _in_a_run_held_for_a_team),
        ("answered", _question),
        ("denied", _in_a_run_held_for_a_team),
        ("cancelled", ApprovalRequestFactory),
        ("expired", ApprovalRequestFactory),
    ],
)
def test_a_decision_hands_its_waiters_what_a_read_after_it_answers(how: str, make: Any) -> None:
    # The view is built in the decision's transaction, not read after its commit: it must be
    # the document the agent's own read of the request gives, whichever way it was decided.
    approval = make()

    async def scenario() -> Any:
        waiting = await _parked_poll(approval)
        await sync_to_async(_decide)(approval.pk, how)
        return await asyncio.wait_for(waiting, timeout=5)

    view = asyncio.run(scenario())
    read = approval_get_for_agent(agent=approval.agent, code=approval.code)
    assert read is not None and read.status != Status.PENDING
    assert view == approval_request_representation(read)
    if how == "cancelled after a move to another team":
        assert view["policy"]["team"] == "new"
    assert list(view) == list(approval_request_representation(read))


def test_a_decision_between_the_check_and_parking_is_not_lost() -> None:
    approval = ApprovalRequestFactory()

    async def decided_during_the_check() -> bool:
        # The database still said pending; the decision lands right after, before we park.
        await sync_to_async(_approve)(approval.pk)
        return False

    async def scenario() -> float:
        started = time.monotonic()
        await realtime.wait_until_resolved(
            code=approval.code, timeout=WAIT_SECONDS, is_resolved=decided_during_the_check
        )
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3.0


def test_it_returns_at_once_when_already_resolved() -> None:
    approval = ApprovalRequestFactory()
    approval_request_cancel(approval=approval, agent=approval.agent)

    async def resolved() -> bool:
        return True

    async def scenario() -> tuple[float, dict[str, set[asyncio.Future[None]]]]:
        started = time.monotonic()
        await realtime.wait_until_resolved(
            code=approval.code, timeout=WAIT_SECONDS, is_resolved=resolved
        )
        listener = realtime._listeners[asyncio.get_running_loop()]
        return time.monotonic() - started, dict(listener.waiters)

    elapsed, left = asyncio.run(scenario())
    assert elapsed < 1.0
    assert left == {}


def test_it_returns_at_the_timeout_and_forgets_the_waiter() -> None:
    approval = ApprovalRequestFactory()

    async def scenario() -> tuple[float, dict[str, set[asyncio.Future[None]]]]:
        started = time.monotonic()
        await realtime.wait_until_resolved(
            code=approval.code, timeout=0.3, is_resolved=_never_resolved
        )
        listener = realtime._listeners[asyncio.get_running_loop()]
        return time.monotonic() - started, dict(listener.waiters)

    elapsed, left = asyncio.run(scenario())
    assert 0.3 <= elapsed < 2.0
    assert left == {}


def test_the_first_waiter_checks_the_database_only_once_the_subscription_is_live() -> None:
    approval = ApprovalRequestFactory()
    probed_at_check: list[bool] = []

    async def check() -> bool:
        listener = realtime._listeners[asyncio.get_running_loop()]
        probed_at_check.append(listener.probed.done())
        return True

    async def scenario() -> None:
        await realtime.wait_until_resolved(code=approval.code, timeout=1.0, is_resolved=check)

    asyncio.run(scenario())
    # The listener's own probe came back through the group before the database was read.
    assert probed_at_check == [True]


def test_one_subscription_serves_every_waiter_of_a_loop() -> None:
    first, second = ApprovalRequestFactory(), ApprovalRequestFactory()

    async def scenario() -> int:
        waiters = [
            asyncio.create_task(
                realtime.wait_until_resolved(
                    code=approval.code, timeout=WAIT_SECONDS, is_resolved=_never_resolved
                )
            )
            for approval in (first, second)
            for _ in range(50)
        ]
        await _until_parked({str(first.code): 50, str(second.code): 50})
        listeners = {id(realtime._listeners[asyncio.get_running_loop()])}
        for approval in (first, second):
            await sync_to_async(_approve)(approval.pk)
        await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
        listeners.add(id(realtime._listeners[asyncio.get_running_loop()]))
        return len(listeners)

    assert asyncio.run(scenario()) == 1


def test_a_server_stopping_answers_its_parked_polls_at_once() -> None:
    # SIGTERM calls realtime.drain (console/asgi.py): parked polls end now and re-read (their
    # answer is the state as it is), and a poll arriving while it stops does not park.
    first, second = ApprovalRequestFactory(), ApprovalRequestFactory()

    async def scenario() -> tuple[float, float]:
        waiters = [
            asyncio.create_task(
                realtime.wait_until_resolved(
                    code=approval.code, timeout=WAIT_SECONDS, is_resolved=_never_resolved
                )
            )
            for approval in (first, second)
        ]
        await _until_parked({str(first.code): 1, str(second.code): 1})
        started = time.monotonic()
        realtime.drain()
        views = await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
        assert views == [None, None]
        drained_after = time.monotonic() - started
        started = time.monotonic()
        await realtime.wait_until_resolved(
            code=first.code, timeout=WAIT_SECONDS, is_resolved=_never_resolved
        )
        return drained_after, time.monotonic() - started

    drained_after, late_poll = asyncio.run(scenario())
    assert drained_after < 1.0
    assert late_poll < 1.0


def test_stopping_ends_a_poll_that_is_reading_instead_of_listening(settings) -> None:
    # With the channel layer's Redis unreachable (nothing listens on its port) a poll reads the
    # database every second; a stop ends that too, not only polls parked on the subscription.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{_free_port()}/0"]},
        }
    }
    approval = ApprovalRequestFactory()

    async def scenario() -> float:
        reads = 0

        async def count_reads() -> bool:
            nonlocal reads
            reads += 1
            return False

        poll = asyncio.create_task(
            realtime.wait_until_resolved(
                code=approval.code, timeout=WAIT_SECONDS, is_resolved=count_reads
            )
        )
        while reads == 0:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        realtime.drain()
        await asyncio.wait_for(poll, timeout=5)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5


def test_a_decision_made_in_this_process_wakes_its_polls_without_the_group() -> None:
    # A reviewer deciding on the server the agent waits on: the poll is woken in the process,
    # not after a round trip through the channel layer (Redis). Shown by a listener that no
    # longer receives the group's messages; on the old code the poll slept to its timeout.
    approval = ApprovalRequestFactory()

    async def scenario() -> dict[str, Any] | None:
        waiting = await _parked_poll(approval)
        listener = realtime._listeners[asyncio.get_running_loop()]
        assert listener.receiving is not None
        listener.receiving.cancel()  # the group's messages no longer reach this process
        await sync_to_async(_approve)(approval.pk)
        return await asyncio.wait_for(waiting, timeout=5)

    # Without the message, only the wake in the process hands the poll a view: at its timeout
    # it would have none.
    view = asyncio.run(scenario())
    assert view is not None and view["id"] == str(approval.code)
    assert view["status"] == Status.APPROVED


def test_a_decision_made_outside_a_server_leaves_the_waking_to_the_group() -> None:
    # A decision in a Celery task or a command (no server loop in its thread) sends the group's
    # message only; the parked poll is woken by it, once.
    approval = ApprovalRequestFactory()

    async def scenario() -> dict[str, Any] | None:
        waiting = await _parked_poll(approval)
        # A thread of its own, not the loop's: asgiref gives async_to_sync a loop of its own.
        await asyncio.get_running_loop().run_in_executor(None, _approve, approval.pk)
        return await asyncio.wait_for(waiting, timeout=5)

    view = asyncio.run(scenario())
    assert view is not None and view["status"] == Status.APPROVED
