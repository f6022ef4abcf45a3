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


class UnknownRun(ApprovalError):
    code = "unknown_run"

    def __init__(self) -> None:
        super().__init__("run: no run with this id belongs to this agent.")
