"""Run context: ties gated calls to a run on the console and records them in its trace.

    with console.run("refund-bot", metadata={"ticket": "SUP-1"}) as run:
        run.llm_call(model="gpt-x", input_tokens=812, output_tokens=95, cost=0.0042)
        issue_refund("pay_1", 4900)          # gated: recorded with its approval and outcome
        run.note("Told the customer.")

Every gated call inside the block names the run in its approval request, and its outcome (ran
with a result or an error, or was not run and why) is appended as a `tool_call` trace event. The
run is closed on exit: `completed`, or `failed` with the exception when the block raised.

Recording never breaks the agent: an event the console could not take is kept and sent with the
next one, or at close. Each batch carries its own idempotency key, so a resent batch is stored once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _protocol
from .errors import ApprovalNotGranted, ConsoleApiError, ConsoleError, ConsoleUnreachable

if TYPE_CHECKING:
    from .client import AsyncConsole, Console
    from .models import Decision

logger = logging.getLogger(__name__)

_active_run: ContextVar[Run | AsyncRun | None] = ContextVar("approval_console_run", default=None)

COMPLETED = "completed"
FAILED = "failed"
HALTED = "halted"
MAX_ERROR_TEXT = 2000


def current_run() -> Run | AsyncRun | None:
    """The run the current code executes in (set by `with console.run(...)`), if any."""
    return _active_run.get()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json_safe(value: Any) -> Any:
    """A tool's result as JSON, or its repr when it is not JSON: the trace keeps what it can."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)[:MAX_ERROR_TEXT]


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]


@dataclass
class _Batch:
    key: str
    events: list[dict[str, Any]]


class _RunBase:
    def __init__(
        self,
        *,
        name: str,
        external_id: str | None,
        metadata: Mapping[str, Any] | None,
        budget: float | None,
    ) -> None:
        self.name = name
        self.external_id = external_id
        self.metadata = dict(metadata or {})
        self.budget = budget
        self.id: str = ""
        self.status = "open"
        self.data: dict[str, Any] = {}
        self._unsent: list[_Batch] = []
        self._lock = threading.Lock()
        self._token: Token[Run | AsyncRun | None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, id={self.id!r}, status={self.status!r})"

    @property
    def total_cost(self) -> float | None:
        """The run's cost total as of the console's last answer about the run."""
        cost = self.data.get("total_cost")
        return float(cost) if cost is not None else None

    def _open_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.external_id is not None:
            body["external_id"] = self.external_id
        if self.metadata:
            body["metadata"] = self.metadata
        if self.budget is not None:
            body["budget"] = self.budget
        return body

    def _queue(self, event: dict[str, Any]) -> None:
        event.setdefault("occurred_at", _now())
        with self._lock:
            self._unsent.append(_Batch(key=str(uuid.uuid4()), events=[event]))

    def _take_unsent(self) -> list[_Batch]:
        with self._lock:
            batches, self._unsent = self._unsent, []
        return batches

    def _keep_unsent(self, batches: list[_Batch]) -> None:
        with self._lock:
            self._unsent[:0] = batches

    @staticmethod
    def _close_body(status: str, reason: str) -> dict[str, Any]:
        body = {"status": status}
        if reason:
            body["reason"] = reason[:MAX_ERROR_TEXT]
        return body

    def _leave(self) -> None:
        """The block is over: gated calls after it are no longer this run's."""
        if self._token is not None:
            _active_run.reset(self._token)
            self._token = None

    # --- The protocol, once for Run and AsyncRun: plans their console carries out -------------

    def _opening(self, settings: _protocol.Settings) -> _protocol.Plan[None]:
        body = self._open_body()
        self.data = yield from _protocol.send(settings, "POST", "/api/v1/runs", json=body)
        self.id = str(self.data["id"])
        self.status = self.data.get("status", "open")

    def _flushing(self, settings: _protocol.Settings) -> _protocol.Plan[None]:
        batches = self._take_unsent()
        for index, batch in enumerate(batches):
            try:
                yield from _protocol.send(
                    settings,
                    "POST",
                    f"/api/v1/runs/{self.id}/events",
                    json={"events": batch.events},
                    headers={"Idempotency-Key": batch.key},
                )
            except ConsoleApiError:
                # Refused (a closed run, an event it will never take): resending cannot help.
                logger.warning("Run %s: trace event refused", self.id, exc_info=True)
            except ConsoleUnreachable:
                logger.warning("Run %s: trace events not recorded yet", self.id, exc_info=True)
                self._keep_unsent(batches[index:])
                return

    def _closing(
        self, settings: _protocol.Settings, status: str, reason: str
    ) -> _protocol.Plan[None]:
        yield from self._flushing(settings)
        self.data = yield from _protocol.send(
            settings, "POST", f"/api/v1/runs/{self.id}/close", json=self._close_body(status, reason)
        )
        self.status = self.data.get("status", status)

    def _exiting(
        self, settings: _protocol.Settings, error: BaseException | None
    ) -> _protocol.Plan[None]:
        """Leaving the block: close the run, `failed` with the block's exception, unless it was
        closed early (then only send what is queued)."""
        if self.status != "open":
            yield from self._flushing(settings)
            return
        status, reason = (COMPLETED, "") if error is None else (FAILED, _error_text(error))
        try:
            yield from self._closing(settings, status, reason)
        except ConsoleError:
            if error is None:
                raise
            # The block's own exception is what the agent needs to see.
            logger.warning("Could not close run %s as failed", self.id, exc_info=True)

    # --- Events agent code records ---------------------------------------------------------

    def record(self, type: str, **fields: Any) -> None:
        """Queue a trace event (llm_call, tool_call, message or note) for the next flush."""
        self._queue({"type": type, **{k: v for k, v in fields.items() if v is not None}})

    def record_gated_call(
        self,
        *,
        tool: str,
        submitted_arguments: dict[str, Any],
        decision: Decision,
        ran: bool,
        result: Any = None,
        error: BaseException | str | None = None,
    ) -> None:
        """The outcome of one gated call, tied to its approval request. `error` may be the
        text an adapter found (a tool's error message) instead of an exception."""
        event: dict[str, Any] = {
            "type": "tool_call",
            "tool": tool,
            "approval": decision.request_id,
            "arguments": decision.approved_arguments
            if ran and decision.approved_arguments is not None
            else submitted_arguments,
            "metadata": {
                "approval_status": decision.status,
                "arguments_changed": decision.arguments_changed,
                "ran": ran,
            },
        }
        if isinstance(error, str):
            event["error"] = error[:MAX_ERROR_TEXT]
        elif error is not None:
            event["error"] = (
                f"Not run: {error}" if isinstance(error, ApprovalNotGranted) else _error_text(error)
            )
        elif ran:
            event["result"] = _json_safe(result)
        self._queue(event)

    def record_unreachable(self, *, tool: str, error: ConsoleError) -> None:
        self._queue(
            {
                "type": "tool_call",
                "tool": tool,
                "error": f"Not run: no decision could be had. {error}"[:MAX_ERROR_TEXT],
                "metadata": {"ran": False},
            }
        )


class Run(_RunBase):
    """A run on a blocking Console. Use as a context manager."""

    def __init__(self, console: Console, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.console = console

    def __enter__(self) -> Run:
        self.console._run(self._opening(self.console))
        self._token = _active_run.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._leave()
        self.console._run(self._exiting(self.console, error))

    def record(self, type: str, **fields: Any) -> None:
        super().record(type, **fields)
        self.flush()

    def record_gated_call(self, **kwargs: Any) -> None:
        super().record_gated_call(**kwargs)
        self.flush()

    def llm_call(self, *, model: str, **fields: Any) -> None:
        """An LLM call: model, prompt/completion (or their digests), tokens, cost."""
        self.record("llm_call", model=model, **fields)

    def tool_call(self, tool: str, **fields: Any) -> None:
        """An ungated tool call: arguments, and a result or an error."""
        self.record("tool_call", tool=tool, **fields)

    def message(self, role: str, content: str) -> None:
        self.record("message", role=role, content=content)

    def note(self, text: str) -> None:
        self.record("note", text=text)

    def flush(self) -> None:
        """Send queued events. Events the console cannot take now stay queued."""
        self.console._run(self._flushing(self.console))

    def close(self, status: str = COMPLETED, *, reason: str = "") -> None:
        """Close the run (completed, failed or halted). Halting denies its pending requests."""
        self.console._run(self._closing(self.console, status, reason))

    def halt(self, reason: str) -> None:
        self.close(HALTED, reason=reason)


class AsyncRun(_RunBase):
    """A run on an AsyncConsole: `async with console.run(...) as run:`.

    Gated calls are recorded as they finish and sent at the next `await run.flush()`, event
    method, or on exit.
    """

    def __init__(self, console: AsyncConsole, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.console = console

    async def __aenter__(self) -> AsyncRun:
        await self.console._run(self._opening(self.console))
        self._token = _active_run.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._leave()
        await self.console._run(self._exiting(self.console, error))

    async def llm_call(self, *, model: str, **fields: Any) -> None:
        self.record("llm_call", model=model, **fields)
        await self.flush()

    async def tool_call(self, tool: str, **fields: Any) -> None:
        self.record("tool_call", tool=tool, **fields)
        await self.flush()

    async def message(self, role: str, content: str) -> None:
        self.record("message", role=role, content=content)
        await self.flush()

    async def note(self, text: str) -> None:
        self.record("note", text=text)
        await self.flush()

    async def flush(self) -> None:
        await self.console._run(self._flushing(self.console))

    async def close(self, status: str = COMPLETED, *, reason: str = "") -> None:
        await self.console._run(self._closing(self.console, status, reason))

    async def halt(self, reason: str) -> None:
        await self.close(HALTED, reason=reason)
