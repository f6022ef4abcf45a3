"""Domain errors raised by run services. Each carries its code, HTTP status and parameter
(console.errors.DomainError); the API's one handler maps them to responses."""

from console.errors import DomainError


class RunError(DomainError):
    code = "run_error"


class RunClosed(RunError):
    """The run is no longer open: it takes no more events and cannot be closed another way."""

    code = "run_closed"
    http_status = 409

    def __init__(self, *, current_status: str) -> None:
        self.current_status = current_status
        super().__init__(f"The run is already {current_status}.")


class RunExternalIdConflict(RunError):
    code = "external_id_conflict"
    http_status = 409
    param = "external_id"

    def __init__(self) -> None:
        super().__init__(
            "A run with this external_id already exists with a different name, metadata or budget."
        )


class IdempotencyConflict(RunError):
    code = "idempotency_conflict"
    http_status = 409
    param = "Idempotency-Key"

    def __init__(self) -> None:
        super().__init__("The idempotency key was already used for a different batch of events.")
