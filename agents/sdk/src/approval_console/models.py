"""The typed values the SDK hands to agent code. Frozen: a decision is a fact, not a draft."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import (
    ApprovalCancelled,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotGranted,
)

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
EXPIRED = "expired"
CANCELLED = "cancelled"
TERMINAL_STATUSES = frozenset({APPROVED, DENIED, EXPIRED, CANCELLED})


def parse_timestamp(raw: str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Decision:
    """The outcome of one approval request.

    `approved_arguments` are the arguments to run: the submitted ones, or the reviewer's changed
    ones when `arguments_changed` is true. They are None for anything but an approval.
    """

    request_id: str
    status: str
    note: str = ""
    approved_arguments: dict[str, Any] | None = None
    arguments_changed: bool = False
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str = "system"
    tool: str = ""
    submitted_arguments: dict[str, Any] = field(default_factory=dict)
    # Questions (Console.ask): the reviewer's answer, valid against the answer schema; None
    # unless the question was answered.
    answer: Any = None

    def answer_or_raise(self) -> Any:
        """A question's answer, or the typed exception saying why there is none: declined
        (ApprovalDenied, the reviewer's reason in `reason`), expired, or cancelled."""
        if self.status == APPROVED:
            return self.answer
        if self.status == DENIED:
            raise ApprovalDenied(
                self, f"Declined to answer: {self.note}" if self.note else "Declined to answer."
            )
        if self.status == EXPIRED:
            raise ApprovalExpired(self, "Nobody answered before the deadline.")
        if self.status == CANCELLED:
            raise ApprovalCancelled(self, "The question was cancelled.")
        raise ApprovalNotGranted(self, f"Not answered (status {self.status!r}).")

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    def is_usable(self, *, now: datetime | None = None) -> bool:
        """Approved, and the window to start the call has not closed."""
        if self.status != APPROVED or self.approved_arguments is None:
            return False
        if self.expires_at is None:
            return True
        return (now or datetime.now(UTC)) < self.expires_at

    def raise_unless_usable(self, *, now: datetime | None = None) -> None:
        """Raise the typed exception for any decision that does not allow the call right now."""
        if self.is_usable(now=now):
            return
        if self.status == APPROVED:
            raise ApprovalExpired(
                self, f"The approval of {self.tool or 'the call'} expired at {self.expires_at}."
            )
        if self.status == DENIED:
            raise ApprovalDenied(self, f"Denied: {self.note}" if self.note else "Denied.")
        if self.status == EXPIRED:
            raise ApprovalExpired(self, "No decision before the deadline.")
        if self.status == CANCELLED:
            raise ApprovalCancelled(self, "The request was cancelled.")
        raise ApprovalNotGranted(self, f"Not approved (status {self.status!r}).")


@dataclass(frozen=True)
class Approval:
    """A snapshot of an approval request as the console reported it."""

    id: str
    tool: str
    arguments: dict[str, Any]
    status: str
    deadline_at: datetime | None
    created_at: datetime | None
    hold_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING

    @property
    def decision(self) -> Decision | None:
        """The decision once the request is terminal, else None."""
        if self.status not in TERMINAL_STATUSES:
            return None
        body = self.raw.get("decision") or {}
        return Decision(
            request_id=self.id,
            status=self.status,
            note=body.get("note") or "",
            approved_arguments=body.get("approved_arguments"),
            arguments_changed=bool(body.get("arguments_changed")),
            expires_at=parse_timestamp(body.get("expires_at")),
            decided_at=parse_timestamp(body.get("decided_at")),
            decided_by=body.get("decided_by") or "system",
            tool=self.tool,
            submitted_arguments=self.arguments,
            answer=body.get("answer"),
        )

    @property
    def outcome(self) -> dict[str, Any] | None:
        """What happened after the decision, once reported (status, result, error, ...)."""
        outcome = self.raw.get("outcome")
        return outcome if isinstance(outcome, dict) else None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Approval:
        return cls(
            id=str(body["id"]),
            tool=body.get("tool", ""),
            arguments=body.get("arguments") or {},
            status=body["status"],
            deadline_at=parse_timestamp(body.get("deadline_at")),
            created_at=parse_timestamp(body.get("created_at")),
            hold_reason=body.get("hold_reason") or "",
            raw=body,
        )
