"""The intake's writer thread (agents/api/intake.py): it answers the agents once their batch has
committed, then asks whether any reviewer listens before waking the push thread for them; and
its batches, which wait briefly for the callers the last one answered."""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.core.cache import cache

from agents.api import intake
from agents.api.fast_path import _render_created
from agents.api.intake import IntakeBatcher, IntakeItem, IntakeOutcome
from agents.services import credential_issue
from approvals import realtime
from approvals.audit import AuditAction
from approvals.models import AuditRecord
from console.request_context import RequestContext
from tests.factories import AgentFactory, build_submission
from tests.waits import async_wait_until

# transaction=True: the writer closes its connection after each batch, as in a server.
pytestmark = pytest.mark.django_db(transaction=True)


def _item(token: str) -> IntakeItem:
    return IntakeItem(
        token=token,
        idempotency_key=str(uuid.uuid4()),
        submission=build_submission(),
        origin=RequestContext(request_id="r", ip_address="127.0.0.1", user_agent="t"),
    )


def test_the_push_thread_is_woken_only_while_a_reviewer_listens() -> None:
    token = credential_issue(agent=AgentFactory()).plaintext
    batcher = IntakeBatcher(_render_created)
    answered: list[list[IntakeOutcome]] = []

    cache.delete(realtime.LISTENING_KEY)  # no reviewer socket open anywhere
    quiet, to_push_quiet = batcher._write([_item(token)], answered.append)
    cache.set(realtime.LISTENING_KEY, True, 60)  # as an open socket keeps it
    # A socket is accepted only once the "no" just remembered has run out (realtime.reviewers).
    realtime.reviewers_listening_forget()
    heard, to_push_heard = batcher._write([_item(token)], answered.append)

    assert answered == [quiet, heard]  # every batch answered, listened to or not
    assert quiet[0].result is not None and quiet[0].result.created
    assert to_push_quiet == []
    assert heard[0].result is not None and heard[0].result.approval is not None
    assert to_push_heard == [heard[0].result.approval.pk]


def test_a_batch_whose_answers_fail_answers_nobody_from_the_thread() -> None:
    def render_fails(result: object) -> bytes:
        raise RuntimeError("the answer cannot be rendered")

    batcher = IntakeBatcher(render_fails)
    answered: list[list[IntakeOutcome]] = []
    token = credential_issue(agent=AgentFactory()).plaintext
    with pytest.raises(RuntimeError):
        batcher._write([_item(token)], answered.append)
    assert answered == []  # the caller gives each agent the error instead


# --- Callers coming back from one batch are written together again -------------------------


async def _batch_of(batcher: IntakeBatcher, token: str, count: int) -> list[IntakeOutcome]:
    return await asyncio.gather(*(batcher.submit(_item(token)) for _ in range(count)))


async def _batches_of(outcomes: list[IntakeOutcome]) -> int:
    """How many batches wrote these requests. One audit append per batch, one time per append:
    each batch's submissions share their audit records' time."""
    codes = []
    for outcome in outcomes:
        assert outcome.result is not None and outcome.result.approval is not None
        codes.append(str(outcome.result.approval.code))
    times = await sync_to_async(
        lambda: set(
            AuditRecord.objects.filter(
                action=AuditAction.REQUEST_SUBMITTED, object_id__in=codes
            ).values_list("created_at", flat=True)
        )
    )()
    return len(times)


@pytest_asyncio.fixture
async def batcher() -> AsyncIterator[IntakeBatcher]:
    """A batcher of the test's own; its writes and its push to reviewers (when a reviewer seems
    to listen) are over before the test ends, with their threads' connections closed."""
    batcher = IntakeBatcher(_render_created)
    yield batcher
    work = [task for task in (batcher._writer, batcher._publisher) if task is not None]
    await asyncio.wait_for(asyncio.gather(*work, return_exceptions=True), timeout=10)


@pytest.fixture
def token() -> str:
    return credential_issue(agent=AgentFactory()).plaintext


async def _writer_done(batcher: IntakeBatcher) -> None:
    """The writer has finished the batch it answered (answers go out before it returns)."""
    assert batcher._writer is not None
    await asyncio.wait_for(batcher._writer, timeout=5)


@pytest.fixture
def patient_gathering(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch waits up to a minute for company, whatever the last write took: a test that
    says "written apart" cannot be passed by a slow machine."""
    monkeypatch.setattr(intake, "GATHER_MAX_SECONDS", 60.0)
    monkeypatch.setattr(intake, "GATHER_SHARE_OF_LAST_WRITE", 10_000.0)


@pytest.mark.asyncio
@pytest.mark.usefixtures("patient_gathering")
async def test_callers_a_batch_answered_are_written_together_when_they_come_back_apart(
    batcher: IntakeBatcher, token: str
) -> None:
    first = await _batch_of(batcher, token, 4)
    assert await _batches_of(first) == 1

    # The four come back one by one. Before, the first went out alone while the others
    # waited for its write, then paid for a batch of their own.
    leader = asyncio.ensure_future(batcher.submit(_item(token)))
    await asyncio.sleep(0)  # its submit runs: it is queued, and a batch is due
    await async_wait_until(
        lambda: not batcher._waiting or batcher._gathered is not None,
        what="the first caller back taken into a batch or held for the others",
    )
    others = [asyncio.ensure_future(batcher.submit(_item(token))) for _ in range(3)]
    again = await asyncio.wait_for(asyncio.gather(leader, *others), timeout=30)

    assert await _batches_of(again) == 1


@pytest.mark.asyncio
async def test_a_batch_waits_for_company_no_longer_than_its_bound(
    batcher: IntakeBatcher, token: str
) -> None:
    await _batch_of(batcher, token, 4)

    # One of the four comes back; the other three never do.
    (alone,) = await asyncio.wait_for(_batch_of(batcher, token, 1), timeout=5)

    assert alone.result is not None and alone.result.created
    await _writer_done(batcher)
    assert batcher._expected == 1  # the next batch expects as many as this one held


@pytest.mark.asyncio
@pytest.mark.usefixtures("patient_gathering")
async def test_a_caller_long_after_the_last_batch_is_written_without_waiting(
    batcher: IntakeBatcher, token: str
) -> None:
    await _batch_of(batcher, token, 4)
    await _writer_done(batcher)
    await async_wait_until(
        lambda: time.monotonic() - batcher._last_answered_at > batcher._last_write_seconds,
        what="longer since the last answers than their batch took to write",
    )

    # Not one of the four coming back: it would otherwise wait up to a minute (the fixture).
    (later,) = await asyncio.wait_for(_batch_of(batcher, token, 1), timeout=5)

    assert later.result is not None and later.result.created


@pytest.mark.asyncio
@pytest.mark.usefixtures("patient_gathering")
async def test_the_wait_for_company_counts_from_the_answers_not_from_the_writers_return(
    batcher: IntakeBatcher, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the writer does after answering (asking whether reviewers listen, which once
    # took Redis a round trip every batch) must not move the window: counted from its return,
    # this one would look like the four answered just now, coming back.
    released = threading.Event()

    def still_busy_after_answering() -> bool:
        released.wait(10)
        return False

    monkeypatch.setattr(realtime, "reviewers_listening", still_busy_after_answering)
    await asyncio.wait_for(_batch_of(batcher, token, 4), timeout=10)  # answered, still busy
    await async_wait_until(
        lambda: time.monotonic() - batcher._last_answered_at > 1.0,
        what="longer since the answers went out than their batch took to write",
    )
    released.set()
    await _writer_done(batcher)

    # Would wait up to a minute for the other three (the fixture) if counted from the return.
    (later,) = await asyncio.wait_for(_batch_of(batcher, token, 1), timeout=5)

    assert later.result is not None and later.result.created
