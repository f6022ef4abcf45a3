"""OpenAI Agents SDK: a `needs_approval` hook whose approvals are decided in the console.

    gate = ConsoleToolApprovals(console)

    @function_tool(needs_approval=gate.needs_approval(impact="high"))
    def issue_refund(payment_id: str, amount: int) -> str: ...

    result = await Runner.run(agent, "Refund pay_1")
    while result.interruptions:
        result = await Runner.run(agent, await gate.resolve(result))

The hook marks each call as needing approval; `resolve` submits the paused calls to the console
(one request per model call id, so resolving twice never asks twice), waits for the reviewers,
and approves or rejects each call on the run state. The Agents SDK runs an approved tool with the
model's original arguments, so an approval with changed arguments is passed to the model as a
rejection that names the approved arguments: fail closed, the model may call again with them.

Duck-typed: nothing here imports the Agents SDK, whose top-level package is also named `agents`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import AsyncConsole, Console
from ..models import Decision

Hook = Callable[[Any, dict[str, Any], str], Awaitable[bool]]


@dataclass
class _CallRequest:
    fields: dict[str, Any]
    summary: str | Callable[[dict[str, Any]], str] | None


@dataclass
class ConsoleToolApprovals:
    console: Console | AsyncConsole
    # call id -> how that call asked to be reviewed, recorded by the hook.
    _calls: dict[str, _CallRequest] = field(default_factory=dict, init=False, repr=False)

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
            self._calls[call_id] = _CallRequest(fields=dict(fields), summary=summary)
            return True  # the console decides every call of this tool

        return hook

    async def resolve(self, result: Any) -> Any:
        """Decide every interruption of `result` through the console; return the run state to
        resume with (`Runner.run(agent, state)`)."""
        state = result.to_state()
        for item in result.interruptions:
            decision = await self._decide(item)
            if decision.is_usable() and not decision.arguments_changed:
                state.approve(item)
            else:
                state.reject(item, rejection_message=rejection_message(decision))
        return state

    async def _decide(self, item: Any) -> Decision:
        raw = item.raw_item
        call_id = raw.get("call_id") if isinstance(raw, dict) else raw.call_id
        raw_arguments = raw.get("arguments") if isinstance(raw, dict) else raw.arguments
        arguments = json.loads(raw_arguments or "{}")
        request = self._calls.get(call_id, _CallRequest(fields={}, summary=None))
        summary = request.summary(arguments) if callable(request.summary) else request.summary
        submit: dict[str, Any] = {
            **request.fields,
            "summary": summary,
            # The model's call id names this exact call: a second resolve replays, not re-asks.
            "idempotency_key": f"openai-agents:{call_id}",
        }
        tool = item.tool_name or "tool"
        if isinstance(self.console, AsyncConsole):
            return await self.console.request_approval(tool, arguments, **submit)
        return await asyncio.to_thread(self.console.request_approval, tool, arguments, **submit)


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
