"""Domain errors raised by approval services; views and APIs map them to responses."""


class ApprovalError(Exception):
    code = "approval_error"


class TransitionConflict(ApprovalError):
    """The request is no longer in the state the caller expected: someone else decided first."""

    code = "already_terminal"

    def __init__(self, *, current_status: str, message: str | None = None) -> None:
        self.current_status = current_status
        super().__init__(message or f"The request is already {current_status}.")


class IdempotencyConflict(ApprovalError):
    code = "idempotency_conflict"

    def __init__(self) -> None:
        super().__init__("The idempotency key was already used for a different request.")


class EscalationUnavailable(ApprovalError):
    """No further escalation step applies: no chain, or every step has fired."""

    code = "escalation_unavailable"


class NotAllowed(ApprovalError):
    """The reviewer may not act on this request (not in its team, not staff)."""

    code = "not_allowed"


class UnknownRun(ApprovalError):
    code = "unknown_run"

    def __init__(self) -> None:
        super().__init__("run: no run with this id belongs to this agent.")


class ApprovalNotVisible(ApprovalError):
    """The reviewer may not see this request: callers answer as if it did not exist (404)."""

    code = "not_found"

    def __init__(self) -> None:
        super().__init__("No such approval request.")


class ReviewRejected(ApprovalError):
    """A reviewer action that the rules refuse (already voted, bad arguments, same team...).

    `param` names the offending input, so forms and the API can point at it.
    """

    code = "invalid_review"

    def __init__(self, message: str, *, code: str = "invalid_review", param: str | None = None):
        self.code = code
        self.param = param
        super().__init__(message)


class ClaimConflict(ApprovalError):
    """Someone else holds a live claim; taking it over must be explicit."""

    code = "claimed_by_other"

    def __init__(self, *, holder: str) -> None:
        self.holder = holder
        super().__init__(f"{holder} has claimed this request. Take it over to work on it.")
