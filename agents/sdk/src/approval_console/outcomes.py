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

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import _gated
from .models import Decision

if TYPE_CHECKING:
    from .client import AsyncConsole, Console


def run_approved[R](console: Console, decision: Decision, call: Callable[..., R], /) -> R:
    """Call `call(**decision.approved_arguments)` if the decision allows it right now, and
    report the outcome. Raises what `decision.raise_unless_usable()` raises otherwise."""
    result: R = _gated.run_blocking(console, _gated.DecidedCall.of(decision), call)
    return result


async def arun_approved[R](
    console: AsyncConsole | Console,
    decision: Decision,
    call: Callable[..., R] | Callable[..., Awaitable[R]],
    /,
) -> R:
    """run_approved for async code: `call` may be a plain or an async function."""
    result: R = await _gated.run_async(console, _gated.DecidedCall.of(decision), call)
    return result


# --- For the adapters, which run the approved call out of the SDK's hands --------------------


async def areport_quietly(
    console: AsyncConsole | Console, decision: Decision, body: dict[str, Any] | None
) -> None:
    """Report `body` (report_outcome's keywords; None: nothing to say) from async code; a
    report that fails is logged, never raised."""
    await _gated.areport(console, decision.request_id, body)


async def arecord_in_run(
    decision: Decision, *, ran: bool = True, result: Any = None, error: BaseException | None = None
) -> None:
    """Record the call in the current run's trace (console.run), if there is one."""
    call = _gated.DecidedCall.of(decision)
    await _gated.arecord(_gated.Settle(call, None, ran=ran, result=result, error=error))
