"""What the calls HumanInTheLoopMiddleware ran on the console's approval did, told to the console.

The middleware runs the approved tools itself, in the agent's tools node, out of the adapter's
sight. What they did is in the graph afterwards: each call that ran left a `ToolMessage` with its
`tool_call_id` (`status="error"` when its error became the message: a `ToolException` the tool
handles, a middleware that turns failures into text), and a tool that raised, which the tool node
of `create_agent` lets through `graph.invoke`, left its exception on its failed task
(`graph.get_state(config).tasks`). So once the resumed agent returns or raises:

| the graph holds, for an approved call             | the console hears                        |
|---------------------------------------------------|------------------------------------------|
| its ToolMessage                                   | `succeeded`, the message's content, short |
| its ToolMessage with `status="error"`             | `failed`, the content                    |
| its tools task failed                             | `failed`, "<ExceptionType>: <message>"   |
| nothing, and the agent finished                   | `not_executed`                           |
| nothing, and the agent paused or failed elsewhere | nothing: it may run yet, or was cut off  |

A task's exception is matched to its call by the call id in its per_call interrupt, or, in batched
mode, when it is the only failed task and its turn has one call left without a message; else (two
tools of one turn raised at once) those calls report nothing, and the console marks them
`not_reported`. Messages a later turn removed (summarized) are found in the thread's checkpoints
since the pause.

As from the decorator, a call that ran carries its duration, and inside `console.run(...)` every
report is recorded in the run's trace too (a `tool_call` event naming the request). The duration
comes from LangChain's own tool callbacks, from `on_tool_start` to `on_tool_end` or
`on_tool_error`, whatever config the agent is resumed with: the first review registers a
LangChain configure hook, so every callback manager of the process gets one handler, which times
the tool runs whose thread and `tool_call_id` a review still waits on (and ignores everything
else). Not a handler in the resumed invoke's config: the agent's code resumes it after
`hitl_review`, with a config of its own, maybe in another thread or task, and would lose it.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _gated, _wire
from ..client import AsyncConsole, Console
from ..models import Decision

logger = logging.getLogger("approval_console")

# HumanInTheLoopMiddleware puts its edit notice before the tool's own answer, then this.
EDIT_NOTICE_END = "\n\nTool response:\n"
NEVER_RAN = "The agent finished without running the approved call."


@dataclass(frozen=True)
class ApprovedCall:
    """A call the middleware was told to run (`approve`, or `edit` with the reviewer's args)."""

    tool_call_id: str
    decision: Decision
    edited: bool


@dataclass(frozen=True)
class HitlReview:
    """The console's decisions on what the middleware paused on: `command` resumes the agent
    (`graph.invoke(review.command, config)`), then `report_outcomes()` (`await
    areport_outcomes()` with an AsyncConsole) tells the console what the approved calls did.
    Call it once the resumed agent returned, or raised: then with the exception (`raised`), whose
    type and message are the failed call's error (else the task's text of it, its repr). It
    never raises."""

    console: Console | AsyncConsole
    graph: Any
    config: Mapping[str, Any]
    command: Any
    approved: tuple[ApprovedCall, ...]
    paused_at: str | None  # the checkpoint the agent was paused at: history before it is older
    timer: ToolTimer = field(default_factory=lambda: ToolTimer())

    def __post_init__(self) -> None:
        thread = (self.config.get("configurable") or {}).get("thread_id")
        self.timer.watch(thread, [call.tool_call_id for call in self.approved])

    @property
    def invoke_config(self) -> dict[str, Any]:
        """A copy of `config`, for code that resumes with it: any config will do, the calls
        are timed whatever the agent is resumed with."""
        return dict(self.config)

    def report_outcomes(self, raised: BaseException | None = None) -> None:
        if not self.approved:
            return
        if isinstance(self.console, AsyncConsole):
            raise TypeError("With an AsyncConsole, await review.areport_outcomes().")
        try:
            state = self.graph.get_state(self.config)
            found = _tool_messages([state])
            if _missing(self.approved, found):
                self._search_history(found)
            endings = _endings(self.approved, state, found, raised, self.timer.durations)
        except Exception:
            logger.warning("Could not read what the approved calls did", exc_info=True)
            return
        for ending in endings:
            _gated.settle(self.console, ending)

    async def areport_outcomes(self, raised: BaseException | None = None) -> None:
        if not self.approved:
            return
        try:
            state = await self.graph.aget_state(self.config)
            found = _tool_messages([state])
            if _missing(self.approved, found):
                async for snapshot in self.graph.aget_state_history(self.config):
                    if self._is_pause(snapshot) or not _add(found, snapshot, self.approved):
                        break
            endings = _endings(self.approved, state, found, raised, self.timer.durations)
        except Exception:
            logger.warning("Could not read what the approved calls did", exc_info=True)
            return
        for ending in endings:
            await _gated.asettle(self.console, ending)

    def _search_history(self, found: dict[str, Any]) -> None:
        for snapshot in self.graph.get_state_history(self.config):
            if self._is_pause(snapshot) or not _add(found, snapshot, self.approved):
                break

    def _is_pause(self, snapshot: Any) -> bool:
        return _checkpoint_id(snapshot) == self.paused_at


def _checkpoint_id(snapshot: Any) -> str | None:
    return (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")


def _messages(values: Any) -> list[Any]:
    messages = values.get("messages") if isinstance(values, Mapping) else None
    return messages if isinstance(messages, list) else []


def last_tool_calls(values: Any) -> list[dict[str, Any]]:
    """The tool calls of the agent's last model turn in a state's values."""
    messages = _messages(values)
    last = next((m for m in reversed(messages) if getattr(m, "type", "") == "ai"), None)
    return list(getattr(last, "tool_calls", None) or [])


def _tool_messages(snapshots: Iterable[Any]) -> dict[str, Any]:
    """Tool messages by call id: in the snapshots' values and their tasks' writes (a superstep
    that failed keeps the writes of its tasks that finished)."""
    found: dict[str, Any] = {}
    for snapshot in snapshots:
        written = [m for task in snapshot.tasks for m in _messages(task.result)]
        for message in [*_messages(snapshot.values), *written]:
            if getattr(message, "type", None) == "tool" and getattr(message, "tool_call_id", None):
                found.setdefault(message.tool_call_id, message)
    return found


def _missing(approved: Iterable[ApprovedCall], found: Mapping[str, Any]) -> bool:
    return any(call.tool_call_id not in found for call in approved)


def _add(found: dict[str, Any], snapshot: Any, approved: Iterable[ApprovedCall]) -> bool:
    """Add a checkpoint's tool messages; True while some approved call's is still missing."""
    for call_id, message in _tool_messages([snapshot]).items():
        found.setdefault(call_id, message)
    return _missing(approved, found)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b if isinstance(b, str) else b.get("text", "") for b in content]
        return "".join(p for p in parts if isinstance(p, str))
    return str(content)


def _error_text(error: Any, raised: BaseException | None) -> str:
    # The checkpointer keeps a task's exception as its repr: the one `invoke` raised says more.
    if isinstance(error, BaseException):
        return _wire.error_text(error)
    if raised is not None and str(error) == repr(raised):
        return _wire.error_text(raised)
    return str(error)[: _wire.MAX_OUTCOME_TEXT]


def _call_errors(
    state: Any, found: Mapping[str, Any], raised: BaseException | None
) -> dict[str, str]:
    """The error of each failed task whose call can be told, by call id."""
    errors: dict[str, str] = {}
    unmatched: list[str] = []
    for task in state.tasks:
        if task.error is None:
            continue
        ids = {
            paused.value.get("tool_call_id")
            for paused in task.interrupts
            if isinstance(paused.value, Mapping)
        } - {None}
        if len(ids) == 1:
            errors[str(ids.pop())] = _error_text(task.error, raised)
        else:
            unmatched.append(_error_text(task.error, raised))
    calls = last_tool_calls(state.values)
    left = [c.get("id") for c in calls if c.get("id") not in found and c.get("id") not in errors]
    if len(unmatched) == 1 and len(left) == 1:
        errors[str(left[0])] = unmatched[0]
    return errors


def _endings(
    approved: Iterable[ApprovedCall],
    state: Any,
    found: Mapping[str, Any],
    raised: BaseException | None,
    durations: Mapping[str, int],
) -> list[_gated.Settle]:
    """What to report and record for each approved call whose ending the graph tells."""
    errors = _call_errors(state, found, raised)
    finished = not state.next and not state.tasks
    endings: list[_gated.Settle] = []
    for call in approved:
        ran = {"duration_ms": durations.get(call.tool_call_id)}
        message = found.get(call.tool_call_id)
        if message is not None and getattr(message, "status", None) == "error":
            error = _text(message.content)[: _wire.MAX_OUTCOME_TEXT]
            ending = _ending(call, {"status": _wire.FAILED, "error": error, **ran}, error=error)
        elif message is not None:
            text = _text(message.content)
            answer = message.content if isinstance(message.content, str) else text
            if call.edited and EDIT_NOTICE_END in text:
                answer = text.split(EDIT_NOTICE_END, 1)[1]
            result = _wire.short_result(answer)
            body = {"status": _wire.SUCCEEDED, "result": result, **ran}
            ending = _ending(call, body, result=result)
        elif call.tool_call_id in errors:
            error = errors[call.tool_call_id]
            ending = _ending(call, {"status": _wire.FAILED, "error": error, **ran}, error=error)
        elif finished:
            body = {"status": _wire.NOT_EXECUTED, "error": NEVER_RAN}
            ending = _ending(call, body, error=NEVER_RAN, ran=False)
        else:
            continue
        endings.append(ending)
    return endings


def _ending(
    call: ApprovedCall,
    body: dict[str, Any],
    *,
    result: Any = None,
    error: str | None = None,
    ran: bool = True,
) -> _gated.Settle:
    decided = _gated.DecidedCall.of(call.decision)  # in the current run, if any
    report = {name: value for name, value in body.items() if value is not None}
    return _gated.Settle(decided, report, ran=ran, result=result, error=error)


def not_run(decision: Decision, note: str) -> _gated.Settle:
    """An approved call the middleware is told not to run: `not_executed`, with why."""
    body = {"status": _wire.NOT_EXECUTED, "error": note}
    return _gated.Settle(_gated.DecidedCall.of(decision), body, ran=False, error=note)


class ToolTimer:
    """How long the approved calls of one review ran, in ms by tool_call_id: `watch` them, and
    the process's tool timing handler (ToolTiming) fills `durations` as they end."""

    def __init__(self) -> None:
        self.durations: dict[str, int] = {}

    def watch(self, thread_id: Any, tool_call_ids: list[str]) -> None:
        if not tool_call_ids:
            return
        _install_tool_timing()
        with _watch_lock:
            for call_id in tool_call_ids:
                _watched[(str(thread_id), call_id)] = self


# (thread id, tool_call_id) -> the timer of the review that waits on that call. Weak: a review
# nobody holds any more (reported, or dropped) stops timing. The newest review of a call wins.
_watched: weakref.WeakValueDictionary[tuple[str, str], ToolTimer] = weakref.WeakValueDictionary()
_watch_lock = threading.Lock()


def _watcher(metadata: Any, tool_call_id: Any) -> ToolTimer | None:
    # LangGraph puts the run's thread_id into every run's metadata: the model's call ids repeat
    # across threads (scripted models, some providers), the pair does not.
    if not tool_call_id or not isinstance(metadata, Mapping):
        return None
    with _watch_lock:
        return _watched.get((str(metadata.get("thread_id")), str(tool_call_id)))


@functools.cache
def _install_tool_timing() -> None:
    """Give every LangChain callback manager of this process the tool timing handler, once.

    A configure hook is how LangChain adds a handler to runs it is not handed in a config (its
    own tracers use it): a context variable read whenever a callback manager is configured.
    Its default is the handler, so the tools of a graph resumed in any thread or task are
    timed. Once (functools.cache; two first reviews in two threads at once may register two
    hooks, which time into the same durations)."""
    from contextvars import ContextVar

    from langchain_core.tracers.context import register_configure_hook

    handler = _timing_handler_class()()
    timing = ContextVar("approval_console_tool_timing", default=handler)
    register_configure_hook(timing, inheritable=True)


@functools.cache
def _timing_handler_class() -> type:
    # LangChain is imported only when a review runs: the SDK does not depend on it.
    from langchain_core.callbacks import BaseCallbackHandler

    class ToolTiming(BaseCallbackHandler):
        """Times the tool runs a review watches. In every run of the process: it asks for tool
        events only (LangChain files them under "agent"), and ignores the unwatched ones."""

        # Called where the tool runs, not later from an executor: the timing is the tool's.
        run_inline = True
        ignore_llm = ignore_retry = ignore_chain = ignore_retriever = True
        ignore_chat_model = ignore_custom_event = True

        def __init__(self) -> None:
            self._running: dict[Any, tuple[ToolTimer, str, float]] = {}
            self._lock = threading.Lock()

        def on_tool_start(
            self,
            serialized: Any,
            input_str: str,
            *,
            run_id: Any,
            metadata: Any = None,
            **kwargs: Any,
        ) -> None:
            call_id = kwargs.get("tool_call_id")
            timer = _watcher(metadata, call_id)
            if timer is not None:
                with self._lock:
                    self._running[run_id] = (timer, str(call_id), _wire.monotonic())

        def on_tool_end(self, output: Any, *, run_id: Any, **kwargs: Any) -> None:
            self._ended(run_id)

        def on_tool_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
            self._ended(run_id)

        def _ended(self, run_id: Any) -> None:
            with self._lock:
                running = self._running.pop(run_id, None)
            if running is not None:
                timer, call_id, since = running
                timer.durations[call_id] = int((_wire.monotonic() - since) * 1000)

    return ToolTiming


__all__ = ["ApprovedCall", "HitlReview", "ToolTimer"]
