"""A decided call, carried out once for every way the SDK runs one: the decorator on Console (plain
and async functions), on AsyncConsole, and run_approved / arun_approved for code that asked first.

What happens around the call is a plan, as the clients' protocol is (_protocol): check the
decision right before the call (an approval may lapse while it waits), make the call, and settle
it: tell the console what it did and record it in the run's trace. The plan yields an `Invoke`
(make the call: it is sent back the return value, or has the exception thrown in) and `Settle`
steps; `run_blocking` carries them out in a thread, `run_async` on an event loop. So the wrappers
cannot drift apart on what the console hears, what the trace says, or in which order.

    call = gate.asking(args, kwargs).decided(console.request_approval(...))
    return run_blocking(console, call, fn)  # or: await run_async(console, call, fn)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _protocol, _wire
from .errors import ConsoleUnreachable
from .models import Decision
from .runs import AsyncRun, Run, current_run

if TYPE_CHECKING:
    from .client import AsyncConsole, Console

# The approved call's positional and keyword arguments.
type CallArguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Invoke:
    """Make the call with these arguments; the plan is sent back what it returned."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Settle:
    """The call ended: report it (`report`: report_outcome's keywords, None: nothing to say)
    and record it in the run it was made in."""

    call: DecidedCall
    report: dict[str, Any] | None
    ran: bool
    result: Any = None
    # An exception, or the error's text where an adapter only has that (a tool's message).
    error: BaseException | str | None = None

    def record(self) -> None:
        run = self.call.run
        if run is None:
            return
        run.record_gated_call(
            tool=self.call.tool,
            submitted_arguments=self.call.submitted_arguments,
            decision=self.call.decision,
            ran=self.ran,
            result=self.result,
            error=self.error,
        )


type Step = Invoke | Settle


@dataclass(frozen=True)
class DecidedCall:
    """One call and the decision on it."""

    tool: str
    submitted_arguments: dict[str, Any]
    decision: Decision
    run: Run | AsyncRun | None
    # The decorator maps the reviewer's arguments back onto the function's signature (it may
    # raise: unknown parameters); run_approved passes them by name.
    call_arguments: Callable[[], CallArguments]

    @classmethod
    def of(cls, decision: Decision) -> DecidedCall:
        """run_approved's call: the decision's own tool and arguments, in the current run."""
        return cls(
            tool=decision.tool,
            submitted_arguments=decision.submitted_arguments,
            decision=decision,
            run=current_run(),
            call_arguments=lambda: ((), dict(decision.approved_arguments or {})),
        )


def plan(call: DecidedCall) -> Generator[Step, Any, Any]:
    """Check, call, settle. What the console hears is _wire.outcome_report's: not_executed when
    the approval cannot be used now, failed or succeeded (with the duration) after the call."""
    try:
        call.decision.raise_unless_usable()
        args, kwargs = call.call_arguments()
    except BaseException as error:
        report = _wire.outcome_report(call.decision, started=None, error=error, ran=False)
        yield Settle(call, report, ran=False, error=error)
        raise
    started = _wire.monotonic()
    try:
        result = yield Invoke(args, kwargs)
    except BaseException as error:
        report = _wire.outcome_report(call.decision, started=started, error=error)
        yield Settle(call, report, ran=True, error=error)
        raise
    report = _wire.outcome_report(call.decision, started=started, result=result)
    yield Settle(call, report, ran=True, result=result)
    return result


# --- The drivers ------------------------------------------------------------------------------


def run_blocking(console: Console, call: DecidedCall, fn: Callable[..., Any]) -> Any:
    running = _protocol.Running(plan(call))
    while (step := running.next_step()) is not None:
        try:
            if isinstance(step, Invoke):
                running.answer(fn(*step.args, **step.kwargs))
            else:
                settle(console, step)
        except BaseException as error:
            running.fail(error)
    return running.result


async def run_async(
    console: Console | AsyncConsole, call: DecidedCall, fn: Callable[..., Any]
) -> Any:
    """run_blocking on an event loop. `fn` may be plain or async; with a blocking Console the
    reporting (blocking I/O) runs in a thread, off the loop."""
    running = _protocol.Running(plan(call))
    while (step := running.next_step()) is not None:
        try:
            if isinstance(step, Invoke):
                result = fn(*step.args, **step.kwargs)
                running.answer(await result if inspect.isawaitable(result) else result)
            else:
                await asettle(console, step)
        except BaseException as error:
            running.fail(error)
    return running.result


def settle(console: Console, step: Settle) -> None:
    report(console, step.call.decision.request_id, step.report)
    step.record()


async def asettle(console: Console | AsyncConsole, step: Settle) -> None:
    await areport(console, step.call.decision.request_id, step.report)
    await arecord(step)


async def arecord(step: Settle) -> None:
    """Record the call in its run from async code: an AsyncRun sends at once."""
    run = step.call.run
    if isinstance(run, AsyncRun):
        step.record()
        await run.flush()
    elif run is not None:
        # A blocking run sends as it records: off the loop.
        await asyncio.to_thread(step.record)


def report(console: Console, request_id: str, body: dict[str, Any] | None) -> None:
    """Report quietly (_protocol.report_quietly): a report that fails is logged, never raised."""
    console._run(_protocol.report_quietly(console, request_id, body))


async def areport(
    console: Console | AsyncConsole, request_id: str, body: dict[str, Any] | None
) -> None:
    from .client import AsyncConsole  # the client imports this module

    if isinstance(console, AsyncConsole):
        await console._run(_protocol.report_quietly(console, request_id, body))
    else:
        await asyncio.to_thread(report, console, request_id, body)


# --- What the decorator asks -----------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """requires_approval's options for one function: how each call of it is asked about."""

    signature: _wire.GatedSignature
    tool: str
    summary: str | Callable[..., str] | None
    # request_approval's other keywords (reasoning, confidence, impact, context, labels, timeout)
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        *,
        tool: str | None,
        exclude: tuple[str, ...],
        summary: str | Callable[..., str] | None,
        **fields: Any,
    ) -> Gate:
        signature = _wire.GatedSignature(fn, frozenset(exclude))
        return cls(signature, tool or fn.__name__, summary, fields)

    def asking(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Asking:
        return Asking(self, args, kwargs, self.signature.arguments(args, kwargs), current_run())


@dataclass(frozen=True)
class Asking:
    """One call of a gated function, being asked about."""

    gate: Gate
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    arguments: dict[str, Any]
    run: Run | AsyncRun | None

    def request(self) -> dict[str, Any]:
        """request_approval's keyword arguments for this call."""
        summary = _wire.summary_text(self.gate.summary, self.gate.signature, self.args, self.kwargs)
        return {
            "summary": summary,
            **self.gate.fields,
            "run": self.run.id if self.run else None,
        }

    @contextlib.contextmanager
    def recording_unreachable(self) -> Iterator[None]:
        """No decision could be had: the call is not run, and the run's trace says why."""
        try:
            yield
        except ConsoleUnreachable as error:
            if self.run is not None:
                self.run.record_unreachable(tool=self.gate.tool, error=error)
            raise

    def decided(self, decision: Decision) -> DecidedCall:
        return DecidedCall(
            tool=self.gate.tool,
            submitted_arguments=self.arguments,
            decision=decision,
            run=self.run,
            call_arguments=lambda: self.gate.signature.call_arguments(
                decision.approved_arguments or {}, self.args, self.kwargs
            ),
        )
