"""Batched intake: new approval requests from many concurrent agents, written together.

Every creation takes the same locks (the agent's row for its policy verdict, the audit chain
head) and commits once. One at a time, those serialize the whole server at a few dozen
requests per second. Here, each server process has one writer thread: requests that arrive
while it writes a batch wait for the next one, and each batch is one transaction
(approvals.services.approval_requests_create). An idle server writes a request at once, alone;
a busy one writes dozens per commit.

A lone caller never waits for company. Callers that one batch answered together, though, usually
come back together (a fleet of agents calling tool after tool), a little apart. Started with the
first of them, the next batch would write it nearly alone while the others wait for that whole
write, then pay for a batch of their own: at 8 callers, one batch in eight held a single
request, and a third held fewer than eight. So when fewer callers wait than the last batch
answered, the next batch waits for the rest: at most half the last batch's write time, and never
over GATHER_MAX_SECONDS, both counted from when the last answers went out (not from when the
writer finished what it does after answering). If they do not come, it writes what it has, and
expects that many next. A caller arriving longer after the last answers than that batch took to
write is not one of them coming back: it is written at once.

Fail closed: if a batch fails, every request in it gets the error and none was created (one
transaction). Agents retry with the same Idempotency-Key.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from agents.models import Agent
from agents.remembered_credentials import (
    CredentialsChanged,
    CredentialsStillActive,
    credentials_authenticate_remembered,
)
from agents.services import credentials_authenticate
from approvals import realtime
from approvals.services import CreateResult, NewApprovalRequest, approval_requests_create
from console.request_context import RequestContext

logger = logging.getLogger(__name__)

# Large enough to amortize the locks and the commit, small enough that one batch's
# transaction stays short next to other writers (reviewers' decisions wait for the same locks).
MAX_BATCH = 64
# The longest a batch waits for the callers the last batch answered (see the module's doc),
# from the answers, and that wait as a share of the last batch's write time: a small part of
# one batch's time. It was 2 ms from the writer's return, which came a few ms after the answers
# while the writer still asked Redis after every batch whether reviewers listen (waiting for
# the GIL while the loop sent the answers). Without that question, at 8 callers on the
# benchmark machine, batches shrank from about 6.7 requests to 4.6 (3 ms from the answers:
# 4.3 to 5.8); 6 ms from the answers brought them back to 6.5.
GATHER_MAX_SECONDS = 0.006
GATHER_SHARE_OF_LAST_WRITE = 0.5


@dataclass(frozen=True)
class IntakeItem:
    """A creation as the HTTP layer parsed it; the credential is checked in the batch."""

    token: str
    idempotency_key: str
    submission: Any  # approvals.services.Submission
    origin: RequestContext


@dataclass(frozen=True)
class IntakeOutcome:
    """`result` is None when the credential did not authenticate."""

    result: CreateResult | None
    # The response body, rendered on the writer thread, where lazy reads are allowed.
    rendered: Any = None


class IntakeBatcher:
    """One per event loop (so one per server process): gathers, then writes on one thread."""

    def __init__(self, render: Callable[[CreateResult], Any]) -> None:
        self._render = render
        self._waiting: list[tuple[IntakeItem, asyncio.Future[IntakeOutcome]]] = []
        self._writer: asyncio.Task[None] | None = None
        # One thread: its database connection is reused batch after batch, and batches of one
        # process never contend with each other for the locks.
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake")
        # Pushing new rows to reviewers (a read and a render) runs beside the writes, not
        # between them, and coalesces: whatever was created meanwhile goes out in one push.
        self._unpublished: list[int] = []
        # How many callers the last batch answered and how long its write took: whom the
        # next batch waits for, and for how long at most.
        self._expected = 1
        self._last_write_seconds = 0.0
        # Set by the writer thread as it hands the answers over (nothing reads it meanwhile).
        self._last_answered_at = 0.0
        self._gathered: asyncio.Event | None = None
        # What it has written, for the benchmark (console.bench): requests per batch. Only
        # the writer thread adds to them.
        self.batches_written = 0
        self.requests_written = 0
        self._publisher: asyncio.Task[None] | None = None
        self._publish_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-push")

    @property
    def idle(self) -> bool:
        """Nothing waits to be written and no write or push is running."""
        busy = [task for task in (self._writer, self._publisher) if task and not task.done()]
        return not (self._waiting or self._unpublished or busy)

    async def submit(self, item: IntakeItem) -> IntakeOutcome:
        future: asyncio.Future[IntakeOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._gathered is not None and len(self._waiting) >= self._expected:
            self._gathered.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    @staticmethod
    def _on(thread: ThreadPoolExecutor, function: Callable[..., Any]) -> Callable[..., Any]:
        # asgiref's sync_to_async, not run_in_executor: the channel layer's async_to_sync
        # inside then runs on this server's event loop, not a fresh one per call.
        return sync_to_async(function, thread_sensitive=False, executor=thread)

    async def _drain(self) -> None:
        while self._waiting:
            await self._gather()
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            items = [item for item, _ in batch]
            answer = partial(_answered_from_thread, asyncio.get_running_loop(), batch)
            started = time.monotonic()
            try:
                outcomes, created_ids = await self._on(self._write_thread, self._write)(
                    items, answer
                )
            except Exception as error:  # each caller gets it; nothing was written
                self._expected = 1  # they retry through Django: nobody to wait for
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._expected = len(batch)
            self._last_write_seconds = self._last_answered_at - started
            _answered(batch, outcomes)  # already, from the writer thread, unless it hung up
            self._unpublished += created_ids
            if self._unpublished and (self._publisher is None or self._publisher.done()):
                self._publisher = asyncio.create_task(self._publish_all())

    async def _gather(self) -> None:
        """Wait, briefly, for the callers the last batch answered (see the module's doc)."""
        if len(self._waiting) >= self._expected:
            return
        since_answers = time.monotonic() - self._last_answered_at
        if since_answers > self._last_write_seconds:
            return  # not a caller coming back from the last batch: nobody else is due
        longest = (
            min(GATHER_MAX_SECONDS, self._last_write_seconds * GATHER_SHARE_OF_LAST_WRITE)
            - since_answers
        )
        if longest <= 0:
            return
        self._gathered = asyncio.Event()
        try:
            await asyncio.wait_for(self._gathered.wait(), longest)
        except TimeoutError:
            pass  # fewer came: write those; the next batch expects as many as this one holds
        finally:
            self._gathered = None

    async def _publish_all(self) -> None:
        while self._unpublished:
            approval_ids, self._unpublished = self._unpublished, []
            await self._on(self._publish_thread, self._publish)(approval_ids)

    def _write(
        self, items: list[IntakeItem], answer: Callable[[list[IntakeOutcome]], None]
    ) -> tuple[list[IntakeOutcome], list[int]]:
        """Write the batch, `answer` the agents once it has committed, and return the ids of
        the requests to push to reviewers: none when no reviewer socket is open anywhere,
        asked here, after the commit, so the push thread is not woken for nothing."""
        close_old_connections()
        try:
            tokens = [item.token for item in items]
            # Credentials verified lately are looked up again in the creation's transaction,
            # with its first round trip, instead of in one of their own before it.
            agents, still_active = credentials_authenticate_remembered(tokens=tokens)
            try:
                accepted, results = self._create(items, agents, still_active)
            except CredentialsChanged:
                # Revoked since verified: nothing was written. As for callers never seen.
                agents = credentials_authenticate(tokens=tokens)
                accepted, results = self._create(items, agents, None)
            outcomes = [IntakeOutcome(result=None)] * len(items)
            created_ids = []
            for (index, _), result in zip(accepted, results, strict=True):
                rendered = self._render(result) if result.failure is None else None
                outcomes[index] = IntakeOutcome(result=result, rendered=rendered)
                if result.created and result.approval is not None:
                    created_ids.append(result.approval.pk)
            # Counted before the answers go out: whoever has its answer finds its batch counted.
            self.batches_written += 1
            self.requests_written += len(items)
            self._last_answered_at = time.monotonic()
            answer(outcomes)
            if created_ids and not realtime.reviewers_listening():
                created_ids = []
            return outcomes, created_ids
        finally:
            close_old_connections()

    @staticmethod
    def _create(
        items: list[IntakeItem],
        agents: dict[str, Agent | None],
        still_active: CredentialsStillActive | None,
    ) -> tuple[list[tuple[int, NewApprovalRequest]], list[CreateResult]]:
        accepted = [
            (index, NewApprovalRequest(
                agent=agent,
                idempotency_key=item.idempotency_key,
                submission=item.submission,
                origin=item.origin,
            ))
            for index, item in enumerate(items)
            if (agent := agents[item.token]) is not None
        ]  # fmt: skip
        results = approval_requests_create(
            [new for _, new in accepted],
            publish_after_commit=False,
            checks=[still_active] if still_active is not None else [],
        )
        return accepted, results

    @staticmethod
    def _publish(approval_ids: list[int]) -> None:
        try:
            realtime.publish_approvals_created(approval_ids)
        finally:
            close_old_connections()


def _answered_from_thread(
    loop: asyncio.AbstractEventLoop,
    batch: list[tuple[IntakeItem, "asyncio.Future[IntakeOutcome]"]],
    outcomes: list[IntakeOutcome],
) -> None:
    # From the writer thread, as soon as the batch has committed: the agents' answers go out
    # while the thread finishes (the reviewers' check), not after it.
    loop.call_soon_threadsafe(_answered, batch, outcomes)


def _answered(
    batch: list[tuple[IntakeItem, "asyncio.Future[IntakeOutcome]"]], outcomes: list[IntakeOutcome]
) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if not future.done():  # answered before, or the agent hung up meanwhile
            future.set_result(outcome)


_batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IntakeBatcher]" = (
    weakref.WeakKeyDictionary()
)


def intake_batcher(render: Callable[[CreateResult], Any]) -> IntakeBatcher:
    """The running loop's batcher (a server process has one loop; tests start several)."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = IntakeBatcher(render)
    return batcher


def intake_written() -> tuple[int, int]:
    """How many batches, and requests in them, this process's batchers have written."""
    batchers = list(_batchers.values())
    return (
        sum(batcher.batches_written for batcher in batchers),
        sum(batcher.requests_written for batcher in batchers),
    )


def intake_idle() -> bool:
    """Whether every batcher of this process is idle. For a test server that keeps running
    between tests: the test database is emptied only once no batch still writes or pushes rows
    (a push reading rows while the tables are truncated deadlocks on PostgreSQL)."""
    return all(batcher.idle for batcher in list(_batchers.values()))
