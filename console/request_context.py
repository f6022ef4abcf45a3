"""Where the current unit of work came from: request id, client address, user agent and the
caller's trace context.

The RequestIdMiddleware binds it for each HTTP exchange; Celery tasks inherit the request id of
the exchange that enqueued them (through a message header), so one id ties together the API call,
the decision, the audit records and whatever notifications and webhooks follow. Logs carry it
through RequestContextLogFilter; audit records store it.
"""

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest

from console.tracing import traceparent_from_header

CELERY_HEADER = "console_request_id"


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip_address: str | None = None
    user_agent: str = ""
    # The caller's W3C trace context (console.tracing), normalized; "" when it sent none.
    traceparent: str = ""


_EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("console_request_context", default=_EMPTY)


def current_request_context() -> RequestContext:
    return _current.get()


@contextmanager
def bound_request_context(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def client_ip_address(request: HttpRequest) -> str | None:
    """The client's address: the peer's, or behind a proxy the one CLIENT_IP_HEADER names.

    Never X-Forwarded-For by default: any client can send it, and an address an attacker can
    choose is worse than none in an audit trail and useless for throttling sign-ins. An operator
    names the header their own proxy overwrites (X-Real-IP, say); with a list-valued header the
    right-most entry is taken, the one the nearest proxy added. Without the header (a request
    that did not come through the proxy) the peer's address is used.
    """
    raw = request.META.get("REMOTE_ADDR", "")
    header = settings.CLIENT_IP_HEADER
    if header and (forwarded := request.headers.get(header, "").strip()):
        raw = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return ipaddress.ip_address(raw).compressed
    except ValueError:
        return None


def request_context_from_http(request: HttpRequest, *, request_id: str) -> RequestContext:
    return RequestContext(
        request_id=request_id,
        ip_address=client_ip_address(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        traceparent=traceparent_from_header(request.headers.get("traceparent")),
    )


class RequestContextLogFilter(logging.Filter):
    """Adds `request_id` to every log record (empty outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = _current.get().request_id
        return True


# --- Celery: carry the request id from the enqueuing exchange into the task -----------------


def attach_request_id_header(headers: dict[str, object] | None, **_: object) -> None:
    """before_task_publish: put the current request id into the message headers."""
    request_id = _current.get().request_id
    if headers is not None and request_id:
        headers[CELERY_HEADER] = request_id


_task_tokens: dict[str, object] = {}


def bind_task_request_id(task_id: str, task: object, **_: object) -> None:
    """task_prerun: bind the request id the message carried, for logs and audit records."""
    task_request = getattr(task, "request", None)
    request_id = getattr(task_request, CELERY_HEADER, None) or ""
    if not request_id and task_request is not None:
        request_id = (getattr(task_request, "headers", None) or {}).get(CELERY_HEADER, "")
    _task_tokens[task_id] = _current.set(replace(_EMPTY, request_id=str(request_id)))


def unbind_task_request_id(task_id: str, **_: object) -> None:
    """task_postrun: forget it, so the next task on this worker thread starts clean."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _current.reset(token)  # type: ignore[arg-type]
