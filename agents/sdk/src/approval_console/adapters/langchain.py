"""LangChain 1.x: the console decides what `HumanInTheLoopMiddleware` pauses an agent on.

    from langchain.agents import create_agent
    from langchain.agents.middleware import HumanInTheLoopMiddleware
    from approval_console.adapters.langchain import review_hitl_interrupts

    agent = create_agent(
        model,
        tools=[issue_refund, send_email],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"issue_refund": True})],
        checkpointer=InMemorySaver(),  # the middleware pauses with `interrupt`: it needs one
    )
    result = agent.invoke({"messages": [...]}, config)
    while "__interrupt__" in result:
        result = review_hitl_interrupts(console, agent, config, impact="high", timeout=600)

The middleware pauses with an interrupt of its own. In its default `batched` mode, one per model
turn: an `HITLRequest` (`action_requests`, `review_configs`), resumed with an `HITLResponse`
(`{"decisions": [...]}`, one per action, in order). In `per_call` mode, one per tool call: a
`ToolApprovalRequest` (`"type": "tool_approval"`), resumed with one decision. Both are read from
the paused graph's state. Each action becomes one console request (tool: the action's name,
arguments: its args, summary: its description unless it is the middleware's default text; in
`per_call` mode the tool's argument schema too, so a reviewer's changes are checked against it),
all of them filed before any is waited on. Once every one is decided (long polls: the last
decision resumes the agent the moment it is made) the middleware is resumed:

| the console                                        | the middleware's decision          |
|----------------------------------------------------|------------------------------------|
| approved as submitted                              | `approve`                          |
| approved with changed arguments                    | `edit`, with the reviewer's args   |
| denied, expired, cancelled, or an approval whose   | `reject`, with the status and the  |
| window to start the call has closed                | reviewer's note                    |

Fail closed where a tool's review config (`allowed_decisions`) cannot say what the console
decided: changed arguments without `edit` allowed become `reject` (the middleware would run the
model's arguments, not the reviewer's; the console hears the call was not executed), and so does
an approval without `approve` allowed. A refusal without `reject` allowed raises ValueError and
leaves the agent paused: allow `reject` for every tool the console reviews. `respond` is never
sent: it would reach the model as the tool's successful result.

Then it tells the console what the approved calls did, from the graph: each call's `ToolMessage`
(`succeeded` with its content, short; `failed` with it when its status is "error"), the exception
of a tool that raised through `invoke` (`failed`, re-raised unchanged), or `not_executed` when the
agent finished without running it (langchain_outcomes). To invoke yourself, `hitl_review` returns
the `Command` and the reporting: `graph.invoke(review.command, config)`, then
`review.report_outcomes()` (with the exception, if it raised). `hitl_resume` returns the `Command`
alone and reports nothing.

Idempotent: a request's key comes from the thread, the interrupt's id and the action's position,
so calling again after a TimeoutError, a crash, or from another process (with a durable
checkpointer) finds the requests already filed instead of filing them twice.

LangChain and LangGraph are imported only when these functions run; the SDK does not need them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .. import _gated
from ..client import AsyncConsole, Console
from ..models import Decision
from ..runs import current_run
from .langchain_outcomes import ApprovedCall, HitlReview, last_tool_calls, not_run

logger = logging.getLogger("approval_console")

APPROVE, EDIT, REJECT, RESPOND = "approve", "edit", "reject", "respond"
EVERY_DECISION = (APPROVE, EDIT, REJECT, RESPOND)
PER_CALL_KIND = "tool_approval"
EDIT_NOT_ALLOWED = (
    "A reviewer approved this call only with changed arguments, and this tool's review does not "
    "allow edits: it was not run."
)
NOT_RUNNABLE = "This tool's review allows neither approve nor edit: it was not run."


@dataclass(frozen=True)
class HitlAction:
    """One tool call the middleware paused on, as the console is asked about it."""

    interrupt_id: str
    position: int  # in its interrupt's action_requests; 0 in per_call mode
    name: str
    args: dict[str, Any]
    description: str
    allowed: tuple[str, ...]
    per_call: bool
    arguments_schema: dict[str, Any] | None = None
    tool_call_id: str | None = None  # the model's call: its ToolMessage says what it did


def _allowed_in_schema(response_schema: Any) -> tuple[str, ...]:
    """The decision types a per_call interrupt's `response_schema` (JSON Schema) accepts."""
    if isinstance(response_schema, Mapping):
        mapping = (response_schema.get("discriminator") or {}).get("mapping")
        if isinstance(mapping, Mapping) and mapping:
            return tuple(str(kind) for kind in mapping)
        only = ((response_schema.get("properties") or {}).get("type") or {}).get("const")
        if isinstance(only, str):
            return (only,)
    return EVERY_DECISION  # unknown shape: LangGraph still checks the answer against it


def _edit_arguments_schema(response_schema: Any) -> dict[str, Any] | None:
    """The tool's argument schema from a per_call interrupt's edit branch, if it shows one."""
    if not isinstance(response_schema, Mapping):
        return None
    definitions = response_schema.get("$defs") or {}
    edited = definitions.get("EditedAction") or {}
    schema = (edited.get("properties") or {}).get("args")
    if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        schema = definitions.get(schema["$ref"].removeprefix("#/$defs/"))
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return None
    if "$ref" in json.dumps(schema):  # nested models refer to the other definitions
        return {**schema, "$defs": definitions}
    return dict(schema)


def _actions_of(paused: Any) -> list[HitlAction]:
    """The middleware's actions in one interrupt, or [] for anybody else's interrupt."""
    value = paused.value
    if not isinstance(value, Mapping):
        return []
    if value.get("type") == PER_CALL_KIND and isinstance(value.get("name"), str):
        schema = getattr(paused, "response_schema", None)
        return [
            HitlAction(
                interrupt_id=paused.id,
                position=0,
                name=value["name"],
                args=dict(value.get("args") or {}),
                description=str(value.get("description") or ""),
                allowed=_allowed_in_schema(schema),
                per_call=True,
                arguments_schema=_edit_arguments_schema(schema),
                tool_call_id=str(value["tool_call_id"]) if value.get("tool_call_id") else None,
            )
        ]
    requests = value.get("action_requests")
    if not isinstance(requests, list):
        return []
    allowed_by_name = {
        str(config.get("action_name")): tuple(config.get("allowed_decisions") or ())
        for config in value.get("review_configs") or ()
        if isinstance(config, Mapping)
    }
    return [
        HitlAction(
            interrupt_id=paused.id,
            position=position,
            name=str(request["name"]),
            args=dict(request.get("args") or {}),
            description=str(request.get("description") or ""),
            allowed=allowed_by_name.get(str(request["name"]), EVERY_DECISION),
            per_call=False,
        )
        for position, request in enumerate(requests)
    ]


def hitl_actions(state: Any) -> list[HitlAction]:
    """What the middleware paused on in a graph state (`graph.get_state(config)`), in order."""
    actions = [
        action
        for task in state.tasks
        for paused in task.interrupts
        for action in _actions_of(paused)
    ]
    return _with_call_ids(actions, state)


def _with_call_ids(actions: list[HitlAction], state: Any) -> list[HitlAction]:
    """Batched actions with their tool call ids. The middleware's `action_requests` name none:
    they are the paused turn's gated calls, in the order of the model's `tool_calls` (the calls
    it let through, or a `when` predicate skipped, in between)."""
    calls = last_tool_calls(state.values)
    position = 0
    named: list[HitlAction] = []
    for action in actions:
        if action.per_call:
            named.append(action)
            continue
        while position < len(calls) and (
            calls[position].get("name") != action.name or calls[position].get("args") != action.args
        ):
            position += 1
        call_id = calls[position].get("id") if position < len(calls) else None
        position += 1
        named.append(replace(action, tool_call_id=str(call_id) if call_id else None))
    return named


def _idempotency_key(config: Mapping[str, Any], action: HitlAction) -> str:
    thread = str(config.get("configurable", {}).get("thread_id", ""))
    identity = json.dumps([thread, action.interrupt_id, action.position, action.name])
    return "langchain-hitl:" + hashlib.sha256(identity.encode()).hexdigest()


def _submit_fields(
    config: Mapping[str, Any], action: HitlAction, fields: Mapping[str, Any]
) -> dict[str, Any]:
    # The middleware's default description only restates the tool and its arguments, which the
    # console shows anyway: as the agent's summary it would say nothing.
    default = action.description.endswith(f"\n\nTool: {action.name}\nArgs: {action.args}")
    defaults: dict[str, Any] = {}
    if action.description and not default:
        defaults["summary"] = action.description
    if action.arguments_schema is not None:
        defaults["arguments_schema"] = action.arguments_schema
    run = current_run()
    if run is not None:  # inside console.run(...): the requests name it, as the decorator's do
        defaults["run"] = run.id
    return {
        "idempotency_key": _idempotency_key(config, action),
        **defaults,
        **fields,
    }


def _reject(action: HitlAction, message: str) -> dict[str, Any]:
    if REJECT not in action.allowed:
        raise ValueError(
            f"The console's decision on {action.name} does not let it run ({message}), but its "
            f"review config allows only {list(action.allowed)}: the middleware cannot be told "
            "not to run it. Allow 'reject' for every tool the console reviews."
        )
    return {"type": REJECT, "message": message}


def hitl_decision(action: HitlAction, decision: Decision) -> dict[str, Any]:
    """The middleware's decision for one action, from the console's decision on it."""
    if not decision.is_usable():
        lapsed = decision.status == "approved"
        reason = "the approval's window to start the call has closed" if lapsed else decision.status
        note = f": {decision.note}" if decision.note else ""
        return _reject(action, f"Not approved in the approval console ({reason}){note}")
    if decision.arguments_changed or APPROVE not in action.allowed:
        if EDIT in action.allowed:
            arguments = decision.approved_arguments or {}
            return {"type": EDIT, "edited_action": {"name": action.name, "args": arguments}}
        return _reject(action, EDIT_NOT_ALLOWED if decision.arguments_changed else NOT_RUNNABLE)
    return {"type": APPROVE}


def _resume_values(actions: list[HitlAction], decisions: list[dict[str, Any]]) -> dict[str, Any]:
    resume: dict[str, Any] = {}
    for action, decision in zip(actions, decisions, strict=True):
        if action.per_call:
            resume[action.interrupt_id] = decision
        else:
            resume.setdefault(action.interrupt_id, {"decisions": []})["decisions"].append(decision)
    return resume


def _not_run_note(action: HitlAction, decision: Decision, sent: Mapping[str, Any]) -> str | None:
    """Why an approved call will not run, for the console's outcome; None when it may run."""
    if decision.is_usable() and sent["type"] == REJECT:
        return str(sent.get("message") or EDIT_NOT_ALLOWED)
    return None


def _left(timeout: float | None, started: float) -> float | None:
    return None if timeout is None else max(0.0, timeout - (time.monotonic() - started))


def _review(
    console: Console | AsyncConsole,
    graph: Any,
    config: Mapping[str, Any],
    state: Any,
    asked: list[tuple[HitlAction, Decision, dict[str, Any]]],
) -> HitlReview:
    from langgraph.types import Command

    actions = [action for action, _, _ in asked]
    approved = tuple(
        ApprovedCall(action.tool_call_id, decision, edited=sent["type"] == EDIT)
        for action, decision, sent in asked
        if sent["type"] in (APPROVE, EDIT) and action.tool_call_id
    )
    return HitlReview(
        console=console,
        graph=graph,
        config=config,
        command=Command(resume=_resume_values(actions, [sent for _, _, sent in asked])),
        approved=approved,
        paused_at=(state.config or {}).get("configurable", {}).get("checkpoint_id"),
    )


def hitl_review(
    console: Console,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> HitlReview | None:
    """The console's decisions on what the middleware paused on, or None when the graph is not
    paused on it: resume with `graph.invoke(review.command, config)`, then call
    `review.report_outcomes()` (`report_outcomes(error)` when it raised) to tell the console
    what the approved calls did. Files the requests, then waits for every one: at most
    `timeout` seconds (None: as long as it takes; 0: not at all), then TimeoutError (the
    requests stay filed; call again). `fields` are submit's keyword arguments (impact, timeout
    of the requests, labels, ...)."""
    started = time.monotonic()
    state = graph.get_state(config)
    actions = hitl_actions(state)
    if not actions:
        return None
    filed = [
        console.submit(action.name, action.args, **_submit_fields(config, action, fields))
        for action in actions
    ]
    decided = [console.wait(approval, timeout=_left(timeout, started)) for approval in filed]
    asked = [(a, d, hitl_decision(a, d)) for a, d in zip(actions, decided, strict=True)]
    for action, decision, sent in asked:
        if (note := _not_run_note(action, decision, sent)) is not None:
            _gated.settle(console, not_run(decision, note))
    return _review(console, graph, config, state, asked)


def hitl_resume(
    console: Console,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Any:
    """`hitl_review(...).command`: the `Command` that resumes the agent, or None. Reports no
    outcomes: use `hitl_review` (or `review_hitl_interrupts`) for that."""
    review = hitl_review(console, graph, config, timeout=timeout, **fields)
    return None if review is None else review.command


def review_hitl_interrupts(
    console: Console,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Any:
    """Let the console decide what the middleware paused on, resume the agent, and tell the
    console what the approved calls did (langchain_outcomes), also when the agent raises.

    Returns what `graph.invoke` returns (the agent may pause again on its next turn: loop while
    it has `__interrupt__`), or None when the graph is not paused on the middleware. See
    `hitl_review` for `timeout` and `fields`.
    """
    review = hitl_review(console, graph, config, timeout=timeout, **fields)
    if review is None:
        return None
    try:
        result = graph.invoke(review.command, config)
    except Exception as error:
        review.report_outcomes(error)
        raise
    review.report_outcomes()
    return result


async def ahitl_review(
    console: AsyncConsole,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> HitlReview | None:
    """hitl_review for asyncio: files the requests and waits for them concurrently; then
    `await graph.ainvoke(review.command, config)` and
    `await review.areport_outcomes()`."""
    started = time.monotonic()
    state = await graph.aget_state(config)
    actions = hitl_actions(state)
    if not actions:
        return None
    filed = await asyncio.gather(
        *(
            console.submit(action.name, action.args, **_submit_fields(config, action, fields))
            for action in actions
        )
    )
    decided = await asyncio.gather(
        *(console.wait(approval, timeout=_left(timeout, started)) for approval in filed)
    )
    asked = [(a, d, hitl_decision(a, d)) for a, d in zip(actions, decided, strict=True)]
    for action, decision, sent in asked:
        if (note := _not_run_note(action, decision, sent)) is not None:
            await _gated.asettle(console, not_run(decision, note))
    return _review(console, graph, config, state, asked)


async def ahitl_resume(
    console: AsyncConsole,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Any:
    """hitl_resume for asyncio: `(await ahitl_review(...)).command`, or None."""
    review = await ahitl_review(console, graph, config, timeout=timeout, **fields)
    return None if review is None else review.command


async def areview_hitl_interrupts(
    console: AsyncConsole,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Any:
    """review_hitl_interrupts for asyncio: `await graph.ainvoke(...)` with the decisions, then
    the approved calls' outcomes."""
    review = await ahitl_review(console, graph, config, timeout=timeout, **fields)
    if review is None:
        return None
    try:
        result = await graph.ainvoke(review.command, config)
    except Exception as error:
        await review.areport_outcomes(error)
        raise
    await review.areport_outcomes()
    return result


__all__ = [
    "ApprovedCall",
    "HitlAction",
    "HitlReview",
    "ahitl_resume",
    "ahitl_review",
    "areview_hitl_interrupts",
    "hitl_actions",
    "hitl_decision",
    "hitl_resume",
    "hitl_review",
    "review_hitl_interrupts",
]
