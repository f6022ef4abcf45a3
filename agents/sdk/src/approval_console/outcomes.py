"""Run an approved call and tell the console what it did, for code that holds a Decision.

The decorator (`@console.requires_approval`) does this by itself. Code that asks first and
calls later (a LangGraph node after `approval_interrupt`, a hand-written loop after
`request_approval`) does it with `run_approved`:

    decision = approval_interrupt(console, "issue_refund", args, tool_call_id=call["id"])
    if decision.is_usable():
        receipt = run_approved(console, decision, issue_refund)

What the console hears, as from the decorator: `succeeded` with a short result when the call
returns, `failed` with "<ExceptionType>: <message>" when it raises (re-raised unchanged),
`not_executed` when the approval lapsed before the call could start (ApprovalExpired raised). A
denial reports nothing; neither does a call interrupted by cancellation or KeyboardInterrupt (it
may or may not have acted: the console's `not_reported` says so). A report that cannot be
delivered is logged (warning) and never masks the call's own result or exception. Inside
`console.run(...)` the call is recorded in the run's trace too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import _wire
from .models import Decision
from .runs import AsyncRun, current_run

if TYPE_CHECKING:
    from .client import AsyncConsole, Console

logger = logging.getLogger(__name__)


def run_approved[R](console: Console, decision: Decision, call: Callable[..., R], /) -> R:
    """Call `call(**decision.approved_arguments)` if the decision allows it right now, and
    report the outcome. Raises what `decision.raise_unless_usable()` raises otherwise."""
    try:
        decision.raise_unless_usable()
    except BaseException as error:
        not_run = _wire.outcome_report(decision, started=None, error=error, ran=False)
        _report(console, decision, not_run)
        _record(decision, ran=False, error=error)
        raise
    started = _wire.monotonic()
    try:
        result = call(**(decision.approved_arguments or {}))
    except BaseException as error:
        _report(console, decision, _wire.outcome_report(decision, started=started, error=error))
        _record(decision, error=error)
        raise
    _report(console, decision, _wire.outcome_report(decision, started=started, result=result))
    _record(decision, result=result)
    return result


async def arun_approved[R](
    console: AsyncConsole | Console,
    decision: Decision,
    call: Callable[..., R] | Callable[..., Awaitable[R]],
    /,
) -> R:
    """run_approved for async code: `call` may be a plain or an async function."""
    try:
        decision.raise_unless_usable()
    except BaseException as error:
        body = _wire.outcome_report(decision, started=None, error=error, ran=False)
        await areport_quietly(console, decision, body)
        await arecord_in_run(decision, ran=False, error=error)
        raise
    started = _wire.monotonic()
    try:
        result = call(**(decision.approved_arguments or {}))
        if inspect.isawaitable(result):
            result = await result
    except BaseException as error:
        failed = _wire.outcome_report(decision, started=started, error=error)
        await areport_quietly(console, decision, failed)
        await arecord_in_run(decision, error=error)
        raise
    succeeded = _wire.outcome_report(decision, started=started, result=result)
    await areport_quietly(console, decision, succeeded)
    await arecord_in_run(decision, result=result)
    return result  # type: ignore[return-value]


def _report(console: Console, decision: Decision, body: dict[str, Any] | None) -> None:
    if body is None:
        return
    try:
        console.report_outcome(decision.request_id, **body)
    except Exception:
        logger.warning(
            "Could not report the outcome of approval request %s",
            decision.request_id,
            exc_info=True,
        )


async def areport_quietly(
    console: AsyncConsole | Console, decision: Decision, body: dict[str, Any] | None
) -> None:
    """Report `body` (report_outcome's keywords; None: nothing to say) from async code; a
    report that fails is logged, never raised."""
    if body is None:
        return
    try:
        from .client import AsyncConsole

        if isinstance(console, AsyncConsole):
            await console.report_outcome(decision.request_id, **body)
        else:  # a blocking Console: off the loop
            await asyncio.to_thread(console.report_outcome, decision.request_id, **body)
    except Exception:
        logger.warning(
            "Could not report the outcome of approval request %s",
            decision.request_id,
            exc_info=True,
        )


def _record(
    decision: Decision, *, ran: bool = True, result: Any = None, error: BaseException | None = None
) -> None:
    run = current_run()
    if run is not None:
        run.record_gated_call(
            tool=decision.tool,
            submitted_arguments=decision.submitted_arguments,
            decision=decision,
            ran=ran,
            result=result,
            error=error,
        )


async def arecord_in_run(
    decision: Decision, *, ran: bool = True, result: Any = None, error: BaseException | None = None
) -> None:
    """Record the call in the current run's trace (console.run), if there is one."""
    run = current_run()
    if run is None:
        return
    if isinstance(run, AsyncRun):
        run.record_gated_call(
            tool=decision.tool,
            submitted_arguments=decision.submitted_arguments,
            decision=decision,
            ran=ran,
            result=result,
            error=error,
        )
        await run.flush()
    else:
        # A blocking run sends as it records: off the loop (to_thread copies the context, so
        # current_run() finds it there too).
        await asyncio.to_thread(_record, decision, ran=ran, result=result, error=error)
