"""Domain errors raised by approval services. Each carries its code, HTTP status and parameter
(console.errors.DomainError); one handler per surface maps them to responses."""

from console.errors import DomainError

# ReviewRejected codes that say someone else acted first: 409, like a decision that lost a race.
CONFLICT_CODES = frozenset({"already_voted", "already_escalated", "quorum_changed"})
# ReviewRejected code: the reviewer operates the agent that submitted the request.
OWN_AGENT = "own_agent"


class ApprovalError(DomainError):
    code = "approval_error"


class TransitionConflict(ApprovalError):
    """The request is no longer in the state the caller expected: someone else decided first."""

    code = "already_terminal"
    http_status = 409

    def __init__(self, *, current_status: str, message: str | None = None) -> None:
        self.current_status = current_status
        super().__init__(message or f"The request is already {current_status}.")


class IdempotencyConflict(ApprovalError):
    code = "idempotency_conflict"
    http_status = 409
    param = "Idempotency-Key"

    def __init__(self, message: str | None = None, *, param: str | None = None) -> None:
        super().__init__(
            message or "The idempotency key was already used for a different request.",
            param=param,
        )


class EscalationUnavailable(ApprovalError):
    """No further escalation step applies: no chain, or every step has fired."""

    code = "escalation_unavailable"
    http_status = 409


class NotAllowed(ApprovalError):
    """The reviewer may not act on this request (not in its team, not staff)."""

    code = "not_allowed"
    http_status = 403


class UnknownRun(ApprovalError):
    code = "unknown_run"
    param = "run"

    def __init__(self) -> None:
        super().__init__("run: no run with this id belongs to this agent.")


class ApprovalNotVisible(ApprovalError):
    """The reviewer may not see this request: callers answer as if it did not exist (404)."""

    code = "not_found"
    http_status = 404

    def __init__(self) -> None:
        super().__init__("No such approval request.")


class RunNotVisible(ApprovalError):
    """The reviewer may not see every request of this run: answered as if it did not exist."""

    code = "not_found"
    http_status = 404

    def __init__(self) -> None:
        super().__init__("No such run.")


class ReviewRejected(ApprovalError):
    """A reviewer action that the rules refuse (already voted, bad arguments, same team...).

    `param` names the offending input, so forms and the API can point at it. The status follows
    the code: 409 where someone else acted first, 403 for the agent's own operator, else 400.
    """

    code = "invalid_review"

    def __init__(self, message: str, *, code: str = "invalid_review", param: str | None = None):
        super().__init__(message, code=code, param=param)
        if code in CONFLICT_CODES:
            self.http_status = 409
        elif code == OWN_AGENT:
            self.http_status = 403  # allowed to see the request, not to approve it


class ClaimConflict(ApprovalError):
    """Someone else holds a live claim; taking it over must be explicit."""

    code = "claimed_by_other"
    http_status = 409

    def __init__(self, *, holder: str) -> None:
        self.holder = holder
        super().__init__(f"{holder} has claimed this request. Take it over to work on it.")


class OutcomeRefused(ApprovalError):
    """An outcome report the rules refuse: already reported differently, or not approved."""

    http_status = 409

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)
