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

Outcomes: the console hears what each approved call did, as from the decorator. `resolve` wraps
the approved tool's invoker (`FunctionTool.on_invoke_tool`) once, so when the resumed run calls
it for a call this object approved, the outcome is reported: `succeeded` with a short result,
`failed` with the exception, also when the Agents SDK turns it into a message for the model:
with the default message it reads the exception through the run's `tool_error_formatter`, and
with a tool's own `failure_error_function` through that function, which it wraps; either is
chained, never replaced, so the model reads what it would have read. An approval the Agents SDK
cannot run (changed arguments, or lapsed before the run resumed) is reported `not_executed`; a
denial reports nothing. The approvals live in this object: resolve and resume in one process.

An MCP server's tools (`Agent(mcp_servers=[...])`, with the server's `require_approval`) are
built anew each turn, so there is no tool to wrap when `resolve` runs. For them `resolve` chains
the agent's `hooks` (AgentHooks): `on_tool_start` receives the turn's tool with the call's
ToolContext, and wraps that tool's invoker and its failure function as above, for the calls this
object approved, before the Agents SDK invokes it; the agent's own hooks run as before. Hooks the
agent's code assigns after `resolve` (`agent.hooks = ...`) would replace the chain, so it is made
again at run time: each server's `list_tools` is wrapped to chain the agent's current hooks
whenever the run lists the server's tools, which it does for every turn, and for the resumed
turn before it runs any of them. A call
the MCP server answers with an error result (`isError`, as a tool that raises in the MCP SDK's
server) is reported `failed` with the result's text: the server's `custom_data_extractor` is
chained to note it, the one it had still answers.

Duck-typed: nothing here imports the Agents SDK (its top-level package is named `agents`, like the
console's Django app), so this module imports wherever the SDK does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import _wire
from ..client import AsyncConsole, Console
from ..models import Approval, Decision
from ..outcomes import arecord_in_run, areport_quietly
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
    # The model's call id -> the approval this object gave it, until the tool runs (and its
    # outcome is reported) or the call is approved again.
    _approved: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)

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
                self._report_when_run(item, call_id, decision)
                state.approve(item)
            else:
                state.reject(item, rejection_message=rejection_message(decision))
                await self._report_not_run(decision)
            # Used once: a later call reusing this call id is never approved by this decision.
            self._requests.pop(call_id, None)
        return state

    def _report_when_run(self, item: Any, call_id: str, decision: Decision) -> None:
        tool = _function_tool_of(item)
        if tool is not None:
            self._wrap(tool)
        elif _is_mcp_call(item):
            # Its tool does not exist yet: it is wrapped when the resumed run starts it.
            _watch_tool_starts(item.agent, self)
        else:
            return  # neither: the run's trace may still say
        self._approved[call_id] = decision

    def _wrap(self, tool: Any) -> None:
        """Report the outcome of this object's approved calls of `tool` when it is invoked."""
        invoker = tool.on_invoke_tool
        if not (isinstance(invoker, _ReportingInvoker) and invoker.gate is self):
            tool.on_invoke_tool = _ReportingInvoker(invoker, self)
        _capture_own_failures(tool)

    async def _report_not_run(self, decision: Decision) -> None:
        if not decision.approved:
            return  # denied, expired or cancelled: the console knows, nothing ran
        why = (
            "Not run: approved only with changed arguments, which the OpenAI Agents SDK cannot "
            "run (it runs the model's); the model was told to call again with them."
            if decision.arguments_changed
            else "The approval expired before the run resumed; the call was not started."
        )
        body = {"status": _wire.NOT_EXECUTED, "error": why}
        await areport_quietly(self.console, decision, body)
        await arecord_in_run(decision, ran=False, error=RuntimeError(why))

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


_TOOL_ERROR = "_approval_console_tool_error"


def _note_tool_error(context: Any, error: Any) -> None:
    """Note on the call's ToolContext that the tool raised, for its _ReportingInvoker."""
    if isinstance(error, BaseException):
        with contextlib.suppress(Exception):
            setattr(context, _TOOL_ERROR, error)


class _ErrorCapture:
    """A `RunConfig.tool_error_formatter` that notes the exception a function tool raised on
    its ToolContext, then leaves the message to the formatter it replaced (or the default)."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, args: Any) -> Any:
        if getattr(args, "kind", None) == "tool_exception":
            _note_tool_error(args.run_context, args.error)
        return self.previous(args) if self.previous is not None else None


class _FailureCapture:
    """A tool's own `failure_error_function`, wrapped: notes the exception on the call's
    ToolContext, then returns the tool's own message for the model."""

    def __init__(self, own: Any) -> None:
        self.own = own

    def __call__(self, context: Any, error: Exception) -> Any:
        _note_tool_error(context, error)
        return self.own(context, error)


class _ReportingInvoker:
    """Wraps a function tool's invoker: reports the outcome of the calls its gate approved and
    passes every other call through untouched."""

    def __init__(self, invoker: Any, gate: ConsoleToolApprovals) -> None:
        self.invoker = invoker
        self.gate = gate

    async def __call__(self, context: Any, arguments: str) -> Any:
        call_id = getattr(context, "tool_call_id", None)
        decision = self.gate._approved.pop(str(call_id), None) if call_id else None
        if decision is None:
            return await self.invoker(context, arguments)
        _capture_tool_errors(context)
        started = _wire.monotonic()
        try:
            result = await self.invoker(context, arguments)
        except BaseException as error:
            body = _wire.outcome_report(decision, started=started, error=error)
            await areport_quietly(self.gate.console, decision, body)
            await arecord_in_run(decision, error=error)
            raise
        handled = getattr(context, _TOOL_ERROR, None)
        if isinstance(handled, BaseException):
            # The Agents SDK caught the tool's exception and told the model: it failed.
            body = _wire.outcome_report(decision, started=started, error=handled)
            await areport_quietly(self.gate.console, decision, body)
            await arecord_in_run(decision, error=handled)
        else:
            said = _text_output(result)
            body = _wire.outcome_report(decision, started=started, result=said)
            await areport_quietly(self.gate.console, decision, body)
            await arecord_in_run(decision, result=said)
        return result


class MCPToolError(Exception):
    """An MCP server answered a call with an error result (`isError`): the call failed."""


class _ErrorResultCapture:
    """An MCP server's `custom_data_extractor`, chained: notes an error result on the call's
    ToolContext (the Agents SDK hands it to the model as the tool's output, not as an
    exception), then answers what the extractor it replaced answers."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, data: Any) -> Any:
        if getattr(data, "is_error", False):
            _note_tool_error(data.run_context, MCPToolError(_output_text(data.tool_output)))
        return self.previous(data) if self.previous is not None else None


def _output_text(output: Any) -> str:
    items = output if isinstance(output, list) else [output]
    texts = [item.get("text") if isinstance(item, dict) else str(item) for item in items]
    return "\n".join(text for text in texts if isinstance(text, str))


def _text_output(result: Any) -> Any:
    """A result of text blocks only (how an MCP tool's answer reaches the model:
    `{"type": "text", "text": ...}`, or a list of them) as its text; any other result as it is."""
    items = result if isinstance(result, list) else [result]
    texts = all(isinstance(item, dict) and item.get("type") == "text" for item in items)
    return _output_text(result) if items and texts else result


class _ToolStartHooks:
    """An agent's `hooks`, chained: on a tool's start, wraps the turn's tool for the calls a
    gate approved (an MCP server's tools are built anew each turn, so only then is there one
    to wrap), then lets the hooks it replaced (if any) see every event, as before."""

    def __init__(self, previous: Any, gate: ConsoleToolApprovals) -> None:
        self.previous = previous
        self.gate = gate

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        call_id = getattr(context, "tool_call_id", None)
        approved = call_id is not None and str(call_id) in self.gate._approved
        if approved and hasattr(tool, "on_invoke_tool"):
            self.gate._wrap(tool)
        if self.previous is not None:
            await self.previous.on_tool_start(context, agent, tool)

    def __getattr__(self, name: str) -> Any:
        # Every other hook (on_start, on_end, on_llm_start, ... and those of later releases):
        # the previous hooks' own, or nothing to do. (Through __dict__: a copy being built has
        # no `previous` yet, and asking for it here again would never end.)
        previous = self.__dict__.get("previous")
        if previous is not None:
            return getattr(previous, name)
        if name.startswith("on_"):
            return _no_hook
        raise AttributeError(name)


async def _no_hook(*args: Any, **kwargs: Any) -> None:
    return None


class _HooksKeeper:
    """An MCP server's `list_tools`, wrapped: chains the hooks of the agents whose calls a gate
    approved (while it has approved calls to report), then lists the tools as before.

    The Agents SDK lists a server's tools whenever it builds a turn's tools: each turn, and, on
    resume, before it runs the paused turn's approved calls (it rebuilds their tools). That is
    after the agent's code could assign `agent.hooks`, and before the run reads them to start
    a tool, so hooks assigned after `resolve` are chained again in time. Weak references: an
    agent or a gate nobody holds any more is dropped, not kept alive by a long-lived server."""

    def __init__(self, list_tools: Any) -> None:
        self.list_tools = list_tools
        self._watching: list[tuple[weakref.ref[Any], weakref.ref[ConsoleToolApprovals]]] = []

    def watch(self, agent: Any, gate: ConsoleToolApprovals) -> None:
        if not any(a is agent and g is gate for a, g in self._live()):
            self._watching.append((weakref.ref(agent), weakref.ref(gate)))

    def _live(self) -> Iterator[tuple[Any, ConsoleToolApprovals]]:
        self._watching = [(a, g) for a, g in self._watching if a() is not None and g() is not None]
        for agent_ref, gate_ref in self._watching:
            agent, gate = agent_ref(), gate_ref()
            if agent is not None and gate is not None:
                yield agent, gate

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for agent, gate in list(self._live()):
            if gate._approved:
                _chain_hooks(agent, gate)
        return await self.list_tools(*args, **kwargs)


def _watch_tool_starts(agent: Any, gate: ConsoleToolApprovals) -> None:
    _chain_hooks(agent, gate)
    for server in getattr(agent, "mcp_servers", None) or []:
        extractor = getattr(server, "custom_data_extractor", None)
        if not isinstance(extractor, _ErrorResultCapture):
            with contextlib.suppress(Exception):
                server.custom_data_extractor = _ErrorResultCapture(extractor)
        keeper = getattr(server, "list_tools", None)
        if keeper is None:
            continue
        if not isinstance(keeper, _HooksKeeper):
            keeper = _HooksKeeper(keeper)
            with contextlib.suppress(Exception):
                server.list_tools = keeper
        keeper.watch(agent, gate)


def _chain_hooks(agent: Any, gate: ConsoleToolApprovals) -> None:
    """Put `gate`'s _ToolStartHooks in front of the agent's hooks, unless they chain it."""
    hooks = getattr(agent, "hooks", None)
    link = hooks
    while isinstance(link, _ToolStartHooks):
        if link.gate is gate:
            return
        link = link.previous
    with contextlib.suppress(Exception):
        agent.hooks = _ToolStartHooks(hooks, gate)


def _is_mcp_call(item: Any) -> bool:
    origin = getattr(getattr(item, "tool_origin", None), "type", None)
    return str(getattr(origin, "value", origin)) == "mcp" and hasattr(item, "agent")


def _capture_tool_errors(context: Any) -> None:
    with contextlib.suppress(Exception):
        setattr(context, _TOOL_ERROR, None)
    run_config = getattr(context, "run_config", None)
    if run_config is None or not hasattr(run_config, "tool_error_formatter"):
        return
    formatter = run_config.tool_error_formatter
    if not isinstance(formatter, _ErrorCapture):
        with contextlib.suppress(Exception):
            run_config.tool_error_formatter = _ErrorCapture(formatter)


def _capture_own_failures(tool: Any) -> None:
    """Wrap a tool's own `failure_error_function`, so a failure it turns into text is still
    reported `failed`.

    The Agents SDK catches the tool's exception inside the invoker we wrap and hands it to that
    function; the run's `tool_error_formatter` is asked only after the default message. So the
    function is where the exception is still visible. Wrapping it, rather than the callable
    inside the SDK's invoker, relies on its public contract (called with the call's ToolContext
    and the exception, whenever a failure becomes text: the tool's, or a cancelled call's) and
    on one attribute, where `function_tool(failure_error_function=...)` stores it; the invoker's
    insides change between releases. The note is on the ToolContext, one per call, so
    concurrent calls never mix. A tool without one of its own is left alone: with the default
    message the formatter notes it, and with `failure_error_function=None` the exception
    propagates to the invoker."""
    if getattr(tool, "_use_default_failure_error_function", True):
        return
    own = getattr(tool, "_failure_error_function", None)
    if callable(own) and not isinstance(own, _FailureCapture):
        with contextlib.suppress(Exception):
            tool._failure_error_function = _FailureCapture(own)


def _function_tool_of(item: Any) -> Any:
    """The paused call's function tool, from the agent it came from."""
    for tool in getattr(getattr(item, "agent", None), "tools", None) or []:
        if getattr(tool, "name", None) == item.tool_name and hasattr(tool, "on_invoke_tool"):
            return tool
    return None


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
