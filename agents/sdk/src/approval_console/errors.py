"""What can go wrong when an agent asks the console, as exceptions an agent can catch by kind.

Two families: the console said no (ApprovalNotGranted and its subclasses, carrying the decision),
or the console could not be asked (ConsoleError). Either way the gated call does not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Decision


class ConsoleError(Exception):
    """The console could not give an answer."""


class ConsoleUnreachable(ConsoleError):
    """Transport errors or 5xx answers outlasted every retry. No decision was received."""


class ConsoleApiError(ConsoleError):
    """The console refused the call (bad input, bad credential, unknown request, conflict)."""

    def __init__(
        self,
        *,
        status_code: int,
        code: str,
        message: str,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}" + (f" ({param})" if param else ""))
        self.status_code = status_code
        self.code = code
        self.message = message
        self.param = param
        self.request_id = request_id


class ApprovalNotGranted(Exception):
    """A decision that does not let the call run. `decision` says which and why."""

    def __init__(self, decision: Decision, message: str) -> None:
        super().__init__(message)
        self.decision = decision


class ApprovalDenied(ApprovalNotGranted):
    """A reviewer denied the call; `reason` is what they told the agent."""

    @property
    def reason(self) -> str:
        return self.decision.note


class ApprovalExpired(ApprovalNotGranted):
    """Nobody decided before the deadline, or an approval was not used before its expires_at."""


class ApprovalCancelled(ApprovalNotGranted):
    """The request was withdrawn before anyone decided."""
