"""The clients' protocol, written once: what each call sends, how its answer is read, when it is
retried, and how a wait long-polls through outages.

Each operation is a plan: a generator that yields the I/O it needs, a `Send` (one HTTP request)
or a `Sleep` (a pause), is sent back the response (or has the I/O's exception thrown in, where
the request was made), and returns the operation's value or raises its error. It never touches a
socket or a clock's sleep itself, so Console runs the same plans with httpx.Client and time.sleep
that AsyncConsole runs with httpx.AsyncClient and asyncio.sleep (the sans-I/O idea of h11): the
clients only carry the steps out, and cannot drift apart on anything the console sees.

    running = Running(submit(console, "send_email", {...}))
    while (step := running.next_step()) is not None:
        try:
            running.answer(carry_out(step))  # the client's I/O: a request, or a sleep
        except BaseException as error:
            running.fail(error)  # raised inside the plan, where it asked for the step
    return running.result
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from . import _wire
from ._tracing import trace_headers
from ._wire import RetryPolicy
from .errors import ConsoleApiError, ConsoleError, ConsoleUnreachable
from .models import EXPIRED, Approval, Decision

# The name docs/outcomes.md gives for a report that could not be delivered: the clients' module.
logger = logging.getLogger("approval_console.client")

LONG_POLL_SECONDS = 30
# How long past the console's own deadline a request may still read `pending` before the client
# stops believing it will ever be decided.
DEADLINE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Send:
    """One HTTP request for the client to make; the plan is sent back its httpx.Response."""

    method: str
    path: str
    json: Mapping[str, Any] | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # A long poll: the console holds the answer for up to long_poll_seconds, read past that.
    long_poll: bool = False


@dataclass(frozen=True)
class Sleep:
    """A pause before the plan goes on (a retry's backoff)."""

    seconds: float


type Step = Send | Sleep
type Plan[R] = Generator[Step, Any, R]


class Settings(Protocol):
    """What the plans read from a client, at the moment they run."""

    @property
    def url(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def long_poll_seconds(self) -> int: ...


class Running[S, R]:
    """A plan being carried out: the client asks for the next step, then gives its result.
    (Generic in the step too: the gated call's plan in _gated yields steps of its own.)"""

    def __init__(self, plan: Generator[S, Any, R]) -> None:
        self._plan = plan
        self._answer: Any = None
        self._error: BaseException | None = None
        self.result: R

    def next_step(self) -> S | None:
        """The next step to carry out, or None when the plan has ended (its value in `result`;
        an error it raised propagates from here)."""
        answer, error = self._answer, self._error
        self._answer = self._error = None
        try:
            if error is not None:
                return self._plan.throw(error)
            return self._plan.send(answer)
        except StopIteration as done:
            self.result = done.value
            return None
        finally:
            del error  # no reference cycle through the traceback

    def answer(self, value: Any) -> None:
        """What the step gave (a Send's response); a Sleep gives nothing."""
        self._answer = value

    def fail(self, error: BaseException) -> None:
        """The step raised: the plan gets the exception where it asked for the step."""
        self._error = error


# --- One HTTP call, retried ----------------------------------------------------------------


def send(
    settings: Settings,
    method: str,
    path: str,
    *,
    json: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    long_poll: bool = False,
) -> Plan[dict[str, Any]]:
    """One API call: its JSON answer. Connect errors and RETRYABLE_STATUSES are retried with
    backoff (or the console's Retry-After) up to `retry.attempts` times, then ConsoleUnreachable;
    any other failure is ConsoleApiError at once."""
    retry = settings.retry
    last_problem = "no attempt made"
    retry_after: float | None = None
    # The agent's current span, if it traces: the console's spans join its trace.
    request = Send(
        method,
        path,
        json=json,
        params=params,
        headers={**trace_headers(), **(headers or {})},
        long_poll=long_poll,
    )
    for attempt in range(retry.attempts):
        if attempt:
            yield Sleep(retry.delay(attempt - 1, retry_after))
        retry_after = None
        try:
            response: httpx.Response = yield request
        except httpx.TransportError as error:
            last_problem = f"{type(error).__name__}: {error}"
            continue
        if response.status_code in _wire.RETRYABLE_STATUSES:
            retry_after = _wire.retry_after_seconds(response)
            last_problem = f"HTTP {response.status_code}"
            continue
        if response.is_success:
            body: dict[str, Any] = response.json()
            return body
        raise _wire.api_error(response)
    raise ConsoleUnreachable(
        f"{method} {settings.url}{path} failed {retry.attempts} times; last: {last_problem}"
    )


def _create(
    settings: Settings, path: str, body: dict[str, Any], idempotency_key: str | None
) -> Plan[Approval]:
    # One key for this call, kept across every retry: a lost response never becomes a second
    # request for the reviewers.
    key = idempotency_key or str(uuid.uuid4())
    return Approval.from_wire(
        (yield from send(settings, "POST", path, json=body, headers={"Idempotency-Key": key}))
    )


# --- The API: each call's body comes from _wire (create_body, question_body, outcome_body) ------


def submit(settings: Settings, body: dict[str, Any], idempotency_key: str | None) -> Plan[Approval]:
    return (yield from _create(settings, "/api/v1/requests", body, idempotency_key))


def submit_question(
    settings: Settings, body: dict[str, Any], idempotency_key: str | None
) -> Plan[Approval]:
    return (yield from _create(settings, "/api/v1/questions", body, idempotency_key))


def get(settings: Settings, request_id: str, *, wait: int = 0) -> Plan[Approval]:
    path = f"/api/v1/requests/{request_id}"
    if wait <= 0:
        return Approval.from_wire((yield from send(settings, "GET", path)))
    return Approval.from_wire(
        (yield from send(settings, "GET", path, params={"wait": f"{wait}s"}, long_poll=True))
    )


def wait(
    settings: Settings, request_id: str | Approval, *, timeout: float | None
) -> Plan[Decision]:
    """Long poll until decided, reconnecting through outages (see Console.wait)."""
    approval = request_id if isinstance(request_id, Approval) else None
    code = approval.id if approval else str(request_id)
    started = last_contact = _wire.monotonic()
    while True:
        if approval is not None:
            decision = approval.decision or _still_pending_past_deadline(approval)
            if decision is not None:
                return decision
        poll = settings.long_poll_seconds
        if timeout is not None:
            remaining = timeout - (_wire.monotonic() - started)
            if remaining <= 0:
                raise TimeoutError(f"Approval request {code} is still pending.")
            poll = max(1, min(poll, int(remaining)))
        try:
            approval = yield from get(settings, code, wait=poll)
            last_contact = _wire.monotonic()
        except (ConsoleUnreachable, ConsoleApiError) as error:
            _raise_unless_outage(
                error, since=last_contact, give_up_after=settings.retry.give_up_after
            )
            yield Sleep(settings.retry.delay(0))


def cancel(settings: Settings, request_id: str) -> Plan[Approval]:
    try:
        return Approval.from_wire(
            (yield from send(settings, "POST", f"/api/v1/requests/{request_id}/cancel"))
        )
    except ConsoleApiError as error:
        if error.status_code == 409:  # decided already: its state, as it stays
            return (yield from get(settings, request_id))
        raise


def report_outcome(settings: Settings, request_id: str, body: dict[str, Any]) -> Plan[Approval]:
    path = f"/api/v1/requests/{request_id}/outcome"
    return Approval.from_wire((yield from send(settings, "POST", path, json=body)))


def report_quietly(
    settings: Settings, request_id: str, report: dict[str, Any] | None
) -> Plan[None]:
    """Report a gated call's outcome (`report`: report_outcome's keywords; None: nothing to say).
    A report that fails must not mask the function's own result or exception: it is logged."""
    if report is None:
        return
    try:
        yield from report_outcome(settings, request_id, _wire.outcome_body(**report))
    except Exception:
        logger.warning(
            "Could not report the outcome of approval request %s", request_id, exc_info=True
        )


# --- Waiting: what a read tells ----------------------------------------------------------------


def _still_pending_past_deadline(approval: Approval) -> Decision | None:
    if approval.deadline_at is None or datetime.now(UTC) < approval.deadline_at + DEADLINE_GRACE:
        return None
    return Decision(
        request_id=approval.id,
        status=EXPIRED,
        note="The console still reported the request pending well past its deadline.",
        tool=approval.tool,
        submitted_arguments=approval.arguments,
    )


def _raise_unless_outage(error: ConsoleError, *, since: float, give_up_after: float) -> None:
    """While waiting, keep reconnecting through an outage, then give up as unreachable.

    A 5xx on a read counts as an outage too: a console shutting down cancels its long polls
    with 500, and re-reading a request is always safe.
    """
    if isinstance(error, ConsoleApiError) and error.status_code < 500:
        raise error
    if _wire.monotonic() - since >= give_up_after:
        if isinstance(error, ConsoleUnreachable):
            raise error
        raise ConsoleUnreachable(f"The console kept failing while waiting: {error}") from error
