"""The root of every domain error: each one knows its code, its HTTP status and, where one input
is at fault, that input's name (zulip's JsonableError).

Services raise these and know nothing of HTTP beyond the status they stand for; one handler per
surface turns them into that surface's answer: `console.api_errors.exception_handler` for the
REST APIs (the native agent API, the reviewer API, AAP and HumanLayer, each in its own envelope),
`approvals.views` for htmx pages (the panel again, with the message, under the same status), and
`approvals.slack_interactions` for Slack (an ephemeral reply). No view translates them by hand.
"""


class DomainError(Exception):
    code: str = "error"
    http_status: int = 400
    # The input at fault (a field, or a header such as Idempotency-Key), when there is one.
    param: str | None = None
    # Seconds the caller should wait before trying again (sent as Retry-After), when known.
    retry_after: int | None = None

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param
        if http_status is not None:
            self.http_status = http_status

    @property
    def message(self) -> str:
        """What the caller is told; a subclass may say more than its log line."""
        return str(self)
