"""LangGraph: pause a graph on a pending approval with `interrupt`, resume it with the decision.

Inside a node:

    decision = approval_interrupt(console, "issue_refund", call["args"], impact="high")
    if decision.is_usable():
        issue_refund(**decision.approved_arguments)

The first pass submits the request and interrupts; the graph (which needs a checkpointer) stops
there. `resume_when_decided(console, graph, config)` waits for the console and resumes it. On
resume LangGraph runs the node again from the top: the submission is idempotent (its key comes from
the thread and the task), and the decision is always re-read from the console, never taken from
the resume value, so nobody can resume a graph into an approval it was not given.

LangGraph is imported only when these functions run; the SDK itself does not need it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..client import AsyncConsole, Console
from ..models import Approval, Decision

INTERRUPT_KIND = "approval_console.pending_approval"


def _idempotency_key(tool: str, arguments: Mapping[str, Any]) -> str:
    from langgraph.config import get_config

    configurable = get_config().get("configurable", {})
    # checkpoint_ns names the task, and stays the same when LangGraph re-runs it on resume.
    identity = json.dumps(
        [
            str(configurable.get("thread_id", "")),
            str(configurable.get("checkpoint_ns", "")),
            tool,
            arguments,
        ],
        sort_keys=True,
        default=str,
    )
    return "langgraph:" + hashlib.sha256(identity.encode()).hexdigest()


def _interrupt_payload(approval: Approval) -> dict[str, Any]:
    return {
        "kind": INTERRUPT_KIND,
        "approval_request_id": approval.id,
        "tool": approval.tool,
        "arguments": approval.arguments,
        "deadline_at": approval.deadline_at.isoformat() if approval.deadline_at else None,
    }


def approval_interrupt(
    console: Console, tool: str, arguments: Mapping[str, Any], **fields: Any
) -> Decision:
    """Ask for approval from inside a node; interrupt the graph while the request is pending.

    `fields` are request_approval's keyword arguments (summary, impact, timeout, ...).
    """
    from langgraph.types import interrupt

    key = fields.pop("idempotency_key", None) or _idempotency_key(tool, arguments)
    approval = console.submit(tool, arguments, idempotency_key=key, **fields)
    if approval.is_pending:
        interrupt(_interrupt_payload(approval))
    return console.wait(approval)


async def aapproval_interrupt(
    console: AsyncConsole, tool: str, arguments: Mapping[str, Any], **fields: Any
) -> Decision:
    """approval_interrupt for async nodes."""
    from langgraph.types import interrupt

    key = fields.pop("idempotency_key", None) or _idempotency_key(tool, arguments)
    approval = await console.submit(tool, arguments, idempotency_key=key, **fields)
    if approval.is_pending:
        interrupt(_interrupt_payload(approval))
    return await console.wait(approval)


def pending_approvals(graph: Any, config: Mapping[str, Any]) -> dict[str, str]:
    """The approval interrupts a paused graph waits on: {interrupt id: approval request id}."""
    state = graph.get_state(config)
    pending: dict[str, str] = {}
    for task in state.tasks:
        for paused in task.interrupts:
            value = paused.value
            if isinstance(value, dict) and value.get("kind") == INTERRUPT_KIND:
                pending[paused.id] = value["approval_request_id"]
    return pending


def resume_when_decided(
    console: Console, graph: Any, config: Mapping[str, Any], *, timeout: float | None = None
) -> Any:
    """Wait until every approval the graph is paused on is decided, then resume it.

    Returns what `graph.invoke` returns; the graph may pause again on a later approval.
    """
    from langgraph.types import Command

    pending = pending_approvals(graph, config)
    if not pending:
        raise ValueError("The graph is not paused on an approval.")
    resume: dict[str, Any] = {}
    for interrupt_id, request_id in pending.items():
        decision = console.wait(request_id, timeout=timeout)
        resume[interrupt_id] = {"approval_request_id": request_id, "status": decision.status}
    return graph.invoke(Command(resume=resume), config)
