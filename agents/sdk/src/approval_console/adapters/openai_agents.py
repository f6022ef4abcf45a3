"""OpenAI Agents SDK: a `needs_approval` hook whose approvals are decided in the console.

    gate = ConsoleToolApprovals(console, run_key="ticket-4711")

    @function_tool(needs_approval=gate.needs_approval(impact="high"))
    def issue_refund(payment_id: str, amount: int) -> str: ...

    result = await Runner.run(agent, "Refund pay_1")
    while result.interruptions:
        result = await Runner.run(agent, await gate.resolve(result))

`resolve` submits the paused calls to the console, waits for the reviewers, and approves or
rejects each on the run state. It also takes a `RunState` restored with `RunState.from_string`,
so a paused run can be saved (`result.to_state().to_string()`), the process stopped, and the run
resolved later, anywhere. With a `run_key` (or inside `console.run(...)`), each call's
idempotency key is derived from the run and the model's call id: resolving the same paused call
again, after a retry or a restart, finds the same request and never creates a second one.
Without one, a call's request is known to this object alone (the model's call ids repeat across
runs, so they cannot name a request by themselves). `submit` files the requests without waiting.

The Agents SDK runs an approved tool with the model's original arguments, so an approval with
changed arguments reaches the model as a rejection that names the approved arguments: fail
closed, the model may call again with them.

Duck-typed: nothing here imports the Agents SDK (its top-level package is named `agents`, like the
console's Django app), so this module imports wherever the SDK does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import AsyncConsole, Console
from ..models import Approval, Decision
from ..runs import current_run

Summary = str | Callable[[dict[str, Any]], str] | None


@dataclass(frozen=True)
class ApprovalHook:
    """What `needs_approval` returns: the Agents SDK calls it (every call needs the console's
    approval), and `resolve` reads from it how to ask, from the tool the paused call names, so a
    run restored in another process asks exactly as the first did."""

    summary: Summary
    fields: dict[str, Any]

    async def __call__(
        self, run_context: Any, tool_parameters: dict[str, Any], call_id: str
    ) -> bool:
        return True  # the console decides every call of this tool

    def request_fields(self, arguments: dict[str, Any]) -> dict[str, Any]:
        text = self.summary(arguments) if callable(self.summary) else self.summary
        return {**self.fields, "summary": text}


@dataclass
class ConsoleToolApprovals:
    console: Console | AsyncConsole
    # Names the run in idempotency keys (a ticket, a conversation, a job id). Without it, the run
    # of `console.run(...)` around `resolve`, if any.
    run_key: str | None = None
    # Without a run key: the model's call id -> the request this object submitted for it, so a
    # resolve retried after an outage waits on the same request.
    _requests: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def needs_approval(self, *, summary: Summary = None, **fields: Any) -> ApprovalHook:
        """A `needs_approval` callable for `function_tool`. `fields` are request_approval's
        keyword arguments (impact, reasoning, timeout, labels, ...); `summary` may be a callable
        given the tool's parameters. Both must give the same request for the same call: a
        restored run submits it again under the same idempotency key."""
        return ApprovalHook(summary=summary, fields=fields)

    async def submit(self, result_or_state: Any) -> dict[str, str]:
        """Submit every paused call of a RunResult or RunState without waiting; returns
        {call id: approval request id}. Save the state, resolve it later."""
        state = _state_of(result_or_state)
        submitted: dict[str, str] = {}
        for item in state.get_interruptions():
            call_id, _ = _call_of(item)
            submitted[call_id] = await self._request_for(state, item)
        return submitted

    async def resolve(self, result_or_state: Any) -> Any:
        """Decide every paused call of a RunResult, or of a RunState (`RunState.from_string`),
        through the console; return the run state to resume with (`Runner.run(agent, state)`)."""
        state = _state_of(result_or_state)
        for item in state.get_interruptions():
            call_id, _ = _call_of(item)
            decision = await self._wait(await self._request_for(state, item))
            if decision.is_usable() and not decision.arguments_changed:
                state.approve(item)
            else:
                state.reject(item, rejection_message=rejection_message(decision))
            # Used once: a later call reusing this call id is never approved by this decision.
            self._requests.pop(call_id, None)
        return state

    async def _request_for(self, state: Any, item: Any) -> str:
        call_id, arguments = _call_of(item)
        if call_id in self._requests:
            return self._requests[call_id]
        tool = item.tool_name or "tool"
        run = current_run()
        run_key = self.run_key or (f"console-run:{run.id}" if run and run.id else None)
        if run_key is None:
            key = str(uuid.uuid4())
        else:
            # The turn and the arguments too: some model providers reuse call ids within a run,
            # and a later call must never find an earlier call's decision. (The turn is
            # serialized with the state, so a restored state derives the same key; the Agents SDK
            # keeps it private, so a version without it just leaves it out.)
            turn = getattr(state, "_current_turn", None)
            identity = json.dumps(
                ["openai-agents", run_key, turn, tool, call_id, arguments], sort_keys=True
            )
            key = "openai-agents:" + hashlib.sha256(identity.encode()).hexdigest()
        fields = {**_hook_fields(item, arguments), "run": run.id if run else None}
        approval = await self._submit(tool, arguments, key, fields)
        if run_key is None:
            self._requests[call_id] = approval.id
        return approval.id

    async def _submit(
        self, tool: str, arguments: dict[str, Any], key: str, fields: dict[str, Any]
    ) -> Approval:
        if isinstance(self.console, AsyncConsole):
            return await self.console.submit(tool, arguments, idempotency_key=key, **fields)
        return await asyncio.to_thread(
            self.console.submit, tool, arguments, idempotency_key=key, **fields
        )

    async def _wait(self, request_id: str) -> Decision:
        if isinstance(self.console, AsyncConsole):
            return await self.console.wait(request_id)
        return await asyncio.to_thread(self.console.wait, request_id)


def _state_of(result_or_state: Any) -> Any:
    # A RunResult turns into its state; a RunState (restored or not) is used as it is.
    to_state = getattr(result_or_state, "to_state", None)
    return to_state() if callable(to_state) else result_or_state


def _hook_fields(item: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """How the paused call's tool asks to be reviewed: from its ApprovalHook, found on the agent
    the call came from (a restored state carries the agent it was restored with)."""
    for tool in getattr(getattr(item, "agent", None), "tools", None) or []:
        if getattr(tool, "name", None) == item.tool_name:
            hook = getattr(tool, "needs_approval", None)
            if isinstance(hook, ApprovalHook):
                return hook.request_fields(arguments)
    return {}


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
