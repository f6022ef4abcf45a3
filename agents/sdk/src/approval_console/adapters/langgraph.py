"""LangGraph: pause a graph on a pending approval with `interrupt`, resume it with the decision.

Inside a node, once per tool call (any number of times in one node):

    for call in state["messages"][-1].tool_calls:
        decision = approval_interrupt(
            console, call["name"], call["args"], tool_call_id=call["id"], impact="high"
        )
        if decision.is_usable():
            receipt = run_approved(console, decision, issue_refund)

`run_approved` calls the tool with the approved arguments and tells the console what it did
(`succeeded` with a short result, `failed` with the exception, which it re-raises, or
`not_executed` when the approval lapsed first), as the decorator does
(approval_console.outcomes; `arun_approved` in async nodes). Ask for every call first, then run
them: LangGraph re-runs the node from the top on each resume, so a call made between two
approvals would run again (its second report, if different, is refused and logged).

A request the console's policy holds for review interrupts the graph (which needs a
checkpointer); `graph.invoke` returns at once with `__interrupt__`. The interrupt's value is a
list of one Agent Inbox `HumanInterrupt` (`action_request`, `config`, `description`), so inbox UIs
render it; `approval_console` in it names the console's request. `resume_when_decided(console,
graph, config)` resumes the graph with every decided request at once, each interrupt with its own
decision (interrupt ids), and `decided_resume` builds that `Command` without waiting at all.

How it stays correct when LangGraph re-runs the node from the top on resume:

- Submitting is idempotent: the key comes from the thread, the task (`checkpoint_ns`) and the tool
  call id, so the re-run finds the same request instead of filing a second one.
- LangGraph matches resume values to a node's `interrupt()` calls by their order, so every request
  the policy held spends its interrupts the same way on every run, whatever the console says now:
  one interrupt, and one more each time the graph was resumed with a value that does not report
  this request decided (an Inbox response, a bare `Command(resume=...)` sent while it was still
  pending). Such a resume pauses the graph again on the same request: a node never blocks waiting
  for a person.
- The decision is always re-read from the console, never taken from the resume value, so nobody
  can resume a graph into an approval it was not given. A resume value that reports a decision the
  console has not made gives a `pending` Decision, which is not usable: the tool does not run.

Agent Inbox responses (accept, edit, respond, ignore) are not decisions here: reviewers decide in
the console (web, API, email, Slack), where they are authenticated and audited.

LangChain 1.x's `HumanInTheLoopMiddleware` pauses on its own interrupt (`action_requests`,
`review_configs`); `review_hitl_interrupts` files one console request per action and resumes the
middleware with the console's decisions (approve, edit, reject). The middleware runs the tools
itself, so their outcomes reach the console as the run's trace or `console.report_outcome`.

LangGraph is imported only when these functions run; the SDK itself does not need it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from ..client import AsyncConsole, Console
from ..models import TERMINAL_STATUSES, Approval, Decision
from ..outcomes import arun_approved, run_approved

__all__ = [
    "aapproval_interrupt",
    "approval_interrupt",
    "arun_approved",
    "decided_resume",
    "pending_approvals",
    "resume_when_decided",
    "review_hitl_interrupts",
    "run_approved",
]

INTERRUPT_KIND = "approval_console.pending_approval"
PENDING_AFTER_RESUME = (
    "The graph was resumed with a decision the console has not made; the request is still pending."
)


def _idempotency_key(tool: str, arguments: Mapping[str, Any], tool_call_id: str | None) -> str:
    from langgraph.config import get_config

    configurable = get_config().get("configurable", {})
    # checkpoint_ns names the task, and stays the same when LangGraph re-runs it on resume; the
    # tool call id tells apart two calls of one tool in one node.
    identity = json.dumps(
        [
            str(configurable.get("thread_id", "")),
            str(configurable.get("checkpoint_ns", "")),
            tool,
            arguments if tool_call_id is None else {"tool_call_id": tool_call_id},
        ],
        sort_keys=True,
        default=str,
    )
    return "langgraph:" + hashlib.sha256(identity.encode()).hexdigest()


def _interrupt_value(approval: Approval) -> list[dict[str, Any]]:
    """Agent Inbox's HumanInterrupt, in the list its `interrupt([request])[0]` convention uses."""
    return [
        {
            "action_request": {"action": approval.tool, "args": approval.arguments},
            "config": {
                "allow_accept": True,
                "allow_edit": True,
                "allow_respond": True,
                "allow_ignore": True,
            },
            "description": (
                f"Approval request {approval.id} waits for a reviewer in the approval console. "
                "Decide it there; the graph resumes with the console's decision."
            ),
            "approval_console": {
                "kind": INTERRUPT_KIND,
                "approval_request_id": approval.id,
                "deadline_at": approval.deadline_at.isoformat() if approval.deadline_at else None,
            },
        }
    ]


def _request_id_of(value: Any) -> str | None:
    """The console request an interrupt value waits on, or None for somebody else's interrupt."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        ours = value[0].get("approval_console")
        if isinstance(ours, dict) and ours.get("kind") == INTERRUPT_KIND:
            return str(ours["approval_request_id"])
    # The shape of SDK 0.x checkpoints, still resumable.
    if isinstance(value, dict) and value.get("kind") == INTERRUPT_KIND:
        return str(value["approval_request_id"])
    return None


def _reports_decided(answer: Any, request_id: str) -> bool:
    return (
        isinstance(answer, Mapping)
        and str(answer.get("approval_request_id")) == request_id
        and answer.get("status") in TERMINAL_STATUSES
    )


def _held_for_review(approval: Approval) -> bool:
    """Whether the policy held the request for a person: stable across re-runs, unlike status."""
    policy = approval.raw.get("policy")
    if isinstance(policy, Mapping) and policy.get("outcome"):
        return policy["outcome"] == "hold"
    return approval.is_pending


def _pause_until_reported(approval: Approval) -> None:
    from langgraph.types import interrupt

    while not _reports_decided(interrupt(_interrupt_value(approval)), approval.id):
        pass  # resumed without this request's decision: pause again, on the same request


def _decision_after_resume(current: Approval) -> Decision:
    return current.decision or Decision(
        request_id=current.id,
        status=current.status,
        note=PENDING_AFTER_RESUME,
        tool=current.tool,
        submitted_arguments=current.arguments,
    )


def approval_interrupt(
    console: Console,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    tool_call_id: str | None = None,
    **fields: Any,
) -> Decision:
    """Ask for approval from inside a node; interrupt the graph while the request is pending.

    Pass the tool call's id (`call["id"]`) whenever there is one. `fields` are submit's keyword
    arguments (summary, impact, timeout, ...).
    """
    key = fields.pop("idempotency_key", None) or _idempotency_key(tool, arguments, tool_call_id)
    approval = console.submit(tool, arguments, idempotency_key=key, **fields)
    if not _held_for_review(approval):
        return console.wait(approval)  # decided by the policy: already terminal, no waiting
    _pause_until_reported(approval)
    return _decision_after_resume(console.get(approval.id))


async def aapproval_interrupt(
    console: AsyncConsole,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    tool_call_id: str | None = None,
    **fields: Any,
) -> Decision:
    """approval_interrupt for async nodes."""
    key = fields.pop("idempotency_key", None) or _idempotency_key(tool, arguments, tool_call_id)
    approval = await console.submit(tool, arguments, idempotency_key=key, **fields)
    if not _held_for_review(approval):
        return await console.wait(approval)
    _pause_until_reported(approval)
    return _decision_after_resume(await console.get(approval.id))


def pending_approvals(graph: Any, config: Mapping[str, Any]) -> dict[str, str]:
    """The approval interrupts a paused graph waits on: {interrupt id: approval request id}."""
    state = graph.get_state(config)
    pending: dict[str, str] = {}
    for task in state.tasks:
        for paused in task.interrupts:
            request_id = _request_id_of(paused.value)
            if request_id is not None:
                pending[paused.id] = request_id
    return pending


def _resume_values(decided: Mapping[str, Approval], pending: Mapping[str, str]) -> dict[str, Any]:
    return {
        interrupt_id: {"approval_request_id": request_id, "status": decided[request_id].status}
        for interrupt_id, request_id in pending.items()
        if request_id in decided
    }


def decided_resume(console: Console, graph: Any, config: Mapping[str, Any]) -> Any:
    """The `Command` that resumes every interrupt whose request is decided, or None. Never waits."""
    from langgraph.types import Command

    pending = pending_approvals(graph, config)
    decided = {}
    for request_id in set(pending.values()):
        current = console.get(request_id)
        if current.decision is not None:
            decided[request_id] = current
    resume = _resume_values(decided, pending)
    return Command(resume=resume) if resume else None


def resume_when_decided(
    console: Console, graph: Any, config: Mapping[str, Any], *, timeout: float | None = None
) -> Any:
    """Resume the graph as soon as any request it is paused on is decided.

    Resumes with every decided interrupt at once, each with its own decision; interrupts still
    pending stay paused (the graph pauses on them again). Waits at most `timeout` seconds for a
    first decision (None: as long as it takes), then raises TimeoutError. Returns what
    `graph.invoke` returns.
    """
    started = time.monotonic()
    pending = pending_approvals(graph, config)
    if not pending:
        raise ValueError("The graph is not paused on an approval.")
    while True:
        command = decided_resume(console, graph, config)
        if command is not None:
            return graph.invoke(command, config)
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            raise TimeoutError(f"No decision yet on {sorted(set(pending.values()))}.")
        # A long poll on one pending request; any decision ends it early for that one only, so
        # keep polls short enough to notice the others.
        only_one = len(set(pending.values())) == 1
        poll = console.long_poll_seconds if only_one else 1
        if timeout is not None:
            poll = max(1, min(poll, int(timeout - waited) or 1))
        polled = console.get(next(iter(pending.values())), wait=poll)
        if only_one and polled.decision is not None:
            # The long poll's answer is the console's decision: resume on it at once, without
            # asking again (the node re-reads it anyway).
            from langgraph.types import Command

            return graph.invoke(
                Command(resume=_resume_values({polled.id: polled}, pending)), config
            )


# --- LangChain 1.x HumanInTheLoopMiddleware ------------------------------------------------


def _hitl_requests(graph: Any, config: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The middleware's interrupts a paused graph waits on: {interrupt id: action requests}."""
    found: dict[str, list[dict[str, Any]]] = {}
    for task in graph.get_state(config).tasks:
        for paused in task.interrupts:
            value = paused.value
            if isinstance(value, dict) and isinstance(value.get("action_requests"), list):
                found[paused.id] = value["action_requests"]
    return found


def _hitl_decision(action: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    if decision.is_usable():
        if decision.arguments_changed:
            return {
                "type": "edit",
                "edited_action": {"name": action["name"], "args": decision.approved_arguments},
            }
        return {"type": "approve"}
    note = f": {decision.note}" if decision.note else ""
    return {"type": "reject", "message": f"Not approved ({decision.status}){note}"}


def review_hitl_interrupts(
    console: Console,
    graph: Any,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Any:
    """Let the console decide what LangChain's HumanInTheLoopMiddleware paused on.

    Files one console request per action request (idempotent: keyed by the thread, the interrupt
    id and the action's position), waits at most `timeout` seconds for all of them (None: as long
    as it takes; TimeoutError after), and resumes the middleware with one decision per action, in
    order: approve, edit (the reviewer changed the arguments) or reject (with the console's note).
    `fields` are submit's keyword arguments. Returns what `graph.invoke` returns, or None when the
    graph is not paused on the middleware.
    """
    from langgraph.types import Command

    thread = str(config.get("configurable", {}).get("thread_id", ""))
    started = time.monotonic()
    resume: dict[str, Any] = {}
    for interrupt_id, actions in _hitl_requests(graph, config).items():
        decisions = []
        for position, action in enumerate(actions):
            identity = json.dumps([thread, interrupt_id, position, action["name"]])
            approval = console.submit(
                action["name"],
                action.get("args") or {},
                idempotency_key="langchain-hitl:" + hashlib.sha256(identity.encode()).hexdigest(),
                **({"summary": action.get("description") or None} | fields),
            )
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            decisions.append(_hitl_decision(action, console.wait(approval, timeout=left)))
        resume[interrupt_id] = {"decisions": decisions}
    if not resume:
        return None
    return graph.invoke(Command(resume=resume), config)
