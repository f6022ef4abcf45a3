"""OpenAI Agents SDK: a `needs_approval` hook whose approvals are decided in the console.

    gate = ConsoleToolApprovals(console)

    @function_tool(needs_approval=gate.needs_approval(impact="high"))
    def issue_refund(payment_id: str, amount: int) -> str: ...

    result = await Runner.run(agent, "Refund pay_1")
    while result.interruptions:
        result = await Runner.run(agent, await gate.resolve(result))

The hook records how each call asked to be reviewed and marks it as needing approval; `resolve`
submits the paused calls to the console, waits for the reviewers, and approves or rejects each on
the run state. A call's request is used once: resolving forgets it, so a later call with a reused
call id is never approved by an old decision. The Agents SDK runs an approved tool with the
model's original arguments, so an approval with changed arguments reaches the model as a
rejection that names the approved arguments: fail closed, the model may call again with them.

Duck-typed: nothing here imports the Agents SDK (its top-level package is named `agents`, like the
console's Django app), so this module imports wherever the SDK does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import AsyncConsole, Console
from ..models import Approval, Decision

Hook = Callable[[Any, dict[str, Any], str], Awaitable[bool]]


@dataclass
class _PausedCall:
    fields: dict[str, Any]
    request_id: str | None = None


@dataclass
class ConsoleToolApprovals:
    console: Console | AsyncConsole
    # The model's call id -> how it asked to be reviewed and, once submitted, its request.
    _calls: dict[str, _PausedCall] = field(default_factory=dict, init=False, repr=False)

    def needs_approval(
        self,
        *,
        summary: str | Callable[[dict[str, Any]], str] | None = None,
        **fields: Any,
    ) -> Hook:
        """A `needs_approval` callable for `function_tool`. `fields` are request_approval's
        keyword arguments (impact, reasoning, timeout, labels, ...); `summary` may be a callable
        given the tool's parameters."""

        async def hook(run_context: Any, tool_parameters: dict[str, Any], call_id: str) -> bool:
            if call_id not in self._calls:
                text = summary(tool_parameters) if callable(summary) else summary
                self._calls[call_id] = _PausedCall(fields={**fields, "summary": text})
            return True  # the console decides every call of this tool

        return hook

    async def resolve(self, result: Any) -> Any:
        """Decide every interruption of `result` through the console; return the run state to
        resume with (`Runner.run(agent, state)`)."""
        state = result.to_state()
        for item in result.interruptions:
            call_id, arguments = _call_of(item)
            paused = self._calls.setdefault(call_id, _PausedCall(fields={}))
            if paused.request_id is None:
                approval = await self._submit(item.tool_name or "tool", arguments, paused.fields)
                # Kept until decided: a resolve retried after an outage waits on the same request.
                paused.request_id = approval.id
            decision = await self._wait(paused.request_id)
            if decision.is_usable() and not decision.arguments_changed:
                state.approve(item)
            else:
                state.reject(item, rejection_message=rejection_message(decision))
            del self._calls[call_id]
        return state

    async def _submit(
        self, tool: str, arguments: dict[str, Any], fields: dict[str, Any]
    ) -> Approval:
        if isinstance(self.console, AsyncConsole):
            return await self.console.submit(tool, arguments, **fields)
        return await asyncio.to_thread(self.console.submit, tool, arguments, **fields)

    async def _wait(self, request_id: str) -> Decision:
        if isinstance(self.console, AsyncConsole):
            return await self.console.wait(request_id)
        return await asyncio.to_thread(self.console.wait, request_id)


def _call_of(item: Any) -> tuple[str, dict[str, Any]]:
    raw = item.raw_item
    call_id = raw.get("call_id") if isinstance(raw, dict) else raw.call_id
    raw_arguments = raw.get("arguments") if isinstance(raw, dict) else raw.arguments
    return str(call_id), json.loads(raw_arguments or "{}")


def rejection_message(decision: Decision) -> str:
    """What the model is told when a call may not run."""
    if decision.approved and decision.arguments_changed:
        approved = json.dumps(decision.approved_arguments, sort_keys=True)
        note = f" Reviewer's note: {decision.note}" if decision.note else ""
        return (
            f"Not run: a reviewer approved this call only with these arguments: {approved}. "
            f"Call the tool again with exactly them.{note}"
        )
    if decision.approved:
        return "Not run: the approval expired before the call could start. Ask again."
    reason = decision.note or {"expired": "nobody decided in time"}.get(decision.status, "")
    return f"Not run: the request was {decision.status}" + (f": {reason}" if reason else ".")
