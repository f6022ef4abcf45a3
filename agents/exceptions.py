"""Domain errors raised by run services; the API maps them to responses."""


class RunError(Exception):
    code = "run_error"


class RunClosed(RunError):
    """The run is no longer open: it takes no more events and cannot be closed another way."""

    code = "run_closed"

    def __init__(self, *, current_status: str) -> None:
        self.current_status = current_status
        super().__init__(f"The run is already {current_status}.")


class RunExternalIdConflict(RunError):
    code = "external_id_conflict"

    def __init__(self) -> None:
        super().__init__(
            "A run with this external_id already exists with a different name, metadata or budget."
        )


class IdempotencyConflict(RunError):
    code = "idempotency_conflict"

    def __init__(self) -> None:
        super().__init__("The idempotency key was already used for a different batch of events.")
