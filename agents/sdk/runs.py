"""Run context: ties gated calls to a run on the console and records them in its trace."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_active_run: ContextVar[Any] = ContextVar("approval_console_run", default=None)


def current_run() -> Any:
    """The run the current code executes in (set by `with console.run(...)`), if any."""
    return _active_run.get()


Run = Any
AsyncRun = Any
