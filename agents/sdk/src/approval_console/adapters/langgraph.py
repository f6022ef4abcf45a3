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

LangChain 1.x's `HumanInTheLoopMiddleware` pauses on an interrupt of its own: see
`approval_console.adapters.langchain`, which reports the outcomes of the calls the middleware ran
from their `ToolMessage`s.

LangGraph is imported only when these functions run; the SDK itself does not need it.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
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
    "run_approved",
]

INTERRUPT_KIND = "approval_console.pending_approval"
PENDING_AFTER_RESUME = (
    "The graph was resumed with a decision the console has not made; the request is still pending."
)
# How many decided requests each Console remembers for the node's re-run (see _Recent).
RECENT_DECISIONS = 1024


class _Recent:
    """What this process has just read from the console, so the node's re-run on resume costs no
    round trip: which request each idempotency key filed, and the terminal state of requests
    read while resuming. Only the console's own answers are kept (never a resume value), and a
    terminal request never changes, so the re-run decides exactly as a fresh read would. Another
    process (a durable resume elsewhere) has nothing here and asks the console."""

    def __init__(self) -> None:
        self.filed: OrderedDict[str, str] = OrderedDict()
        self.decided: OrderedDict[str, Approval] = OrderedDict()
        # A graph may run its nodes' tool calls in threads, all asking through one Console.
        self.lock = threading.Lock()

    def _keep(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        with self.lock:
            store[key] = value
            store.move_to_end(key)
            while len(store) > RECENT_DECISIONS:
                store.popitem(last=False)

    def file(self, key: str, approval: Approval) -> None:
        self._keep(self.filed, key, approval.id)

    def decide(self, approvals: Iterable[Approval]) -> None:
        for approval in approvals:
            if approval.decision is not None:
                self._keep(self.decided, approval.id, approval)

    def decided_for(self, key: str, tool: str, arguments: Mapping[str, Any]) -> Approval | None:
        """The decided request this key filed, if it asked exactly this call: anything else
        goes to the console, which refuses a key reused for another call."""
        request_id = self.filed.get(key)
        known = None if request_id is None else self.decided.get(request_id)
        if known is None or known.tool != tool:
            return None
        same = json.loads(json.dumps(dict(arguments), default=str)) == known.arguments
        return known if same else None


_recent_by_console: weakref.WeakKeyDictionary[Console | AsyncConsole, _Recent] = (
    weakref.WeakKeyDictionary()
)
_recent_lock = threading.Lock()


def _recent(console: Console | AsyncConsole) -> _Recent:
    with _recent_lock:
        recent = _recent_by_console.get(console)
        if recent is None:
            recent = _recent_by_console[console] = _Recent()
        return recent


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
    recent = _recent(console)
    known = recent.decided_for(key, tool, arguments)
    approval = known or console.submit(tool, arguments, idempotency_key=key, **fields)
    recent.file(key, approval)
    if not _held_for_review(approval):
        return console.wait(approval)  # decided by the policy: already terminal, no waiting
    _pause_until_reported(approval)
    return _decision_after_resume(recent.decided.get(approval.id) or console.get(approval.id))


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
    recent = _recent(console)
    approval = recent.decided_for(key, tool, arguments) or await console.submit(
        tool, arguments, idempotency_key=key, **fields
    )
    recent.file(key, approval)
    if not _held_for_review(approval):
        return await console.wait(approval)
    _pause_until_reported(approval)
    return _decision_after_resume(recent.decided.get(approval.id) or await console.get(approval.id))


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


def _resume_command(
    console: Console, decided: Mapping[str, Approval], pending: Mapping[str, str]
) -> Any:
    from langgraph.types import Command

    # The node's re-run reads these instead of asking the console again (_Recent).
    _recent(console).decide(decided.values())
    resume = _resume_values(decided, pending)
    return Command(resume=resume) if resume else None


def decided_resume(console: Console, graph: Any, config: Mapping[str, Any]) -> Any:
    """The `Command` that resumes every interrupt whose request is decided, or None. Never waits."""
    pending = pending_approvals(graph, config)
    decided = {}
    for request_id in set(pending.values()):
        current = console.get(request_id)
        if current.decision is not None:
            decided[request_id] = current
    return _resume_command(console, decided, pending)


def _first_decided(console: Console, request_ids: list[str], wait: int) -> dict[str, Approval]:
    """Long-poll every request at once and return as soon as one is decided: {id: approval} of
    the requests decided by then ({} when every poll ran out first).

    One poll per request, each in a thread of its own, so a decision on any of them ends the
    wait the moment it is made: polling them in turn would notice a decision on the second only
    when the first's poll ran out. The polls still parked when one answers run out by themselves
    (daemon threads, at most `wait` seconds; their answers are dropped).
    """
    if len(request_ids) == 1:
        polled = console.get(request_ids[0], wait=wait)
        return {polled.id: polled} if polled.decision is not None else {}
    answers: queue.Queue[Approval | Exception] = queue.Queue()

    def poll(request_id: str) -> None:
        try:
            answers.put(console.get(request_id, wait=wait))
        except Exception as error:  # handed to the waiting thread, which raises it
            answers.put(error)

    for request_id in request_ids:
        threading.Thread(target=poll, args=(request_id,), daemon=True).start()
    decided: dict[str, Approval] = {}
    for _ in range(len(request_ids)):
        answer = answers.get() if not decided else _next_or_none(answers)
        if answer is None:
            break
        if isinstance(answer, Exception):
            raise answer
        if answer.decision is not None:
            decided[answer.id] = answer
    return decided


def _next_or_none(answers: queue.Queue[Approval | Exception]) -> Approval | Exception | None:
    """An answer already there (decided at the same moment as the first), without waiting."""
    try:
        return answers.get_nowait()
    except queue.Empty:
        return None


def resume_when_decided(
    console: Console, graph: Any, config: Mapping[str, Any], *, timeout: float | None = None
) -> Any:
    """Resume the graph as soon as any request it is paused on is decided.

    Resumes with every decided interrupt at once, each with its own decision; interrupts still
    pending stay paused (the graph pauses on them again). Waits at most `timeout` seconds for a
    first decision (None: as long as it takes), then raises TimeoutError. Returns what
    `graph.invoke` returns.

    Every pending request is long-polled at once: the decision wakes the wait the moment it is
    made, and the graph resumes on the console's answer without asking again.
    """
    started = time.monotonic()
    pending = pending_approvals(graph, config)
    if not pending:
        raise ValueError("The graph is not paused on an approval.")
    request_ids = sorted(set(pending.values()))
    command = decided_resume(console, graph, config)
    while command is None:
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            raise TimeoutError(f"No decision yet on {request_ids}.")
        poll = console.long_poll_seconds
        if timeout is not None:
            poll = max(1, min(poll, int(timeout - waited) or 1))
        command = _resume_command(console, _first_decided(console, request_ids, poll), pending)
    return graph.invoke(command, config)
