"""A database that went away answers 503 `dependency_unavailable`, never a 500 with a stack.

Django turns any exception a view or a middleware raises into the 500 handler's response (with
DEBUG off), so this is the one place that sees them all: pages, htmx partials and the APIs (DRF
hands errors it has no envelope for back to Django). Only a connection problem (the server
stopped, restarting, refusing, or no pooled connection within DATABASE_POOL_TIMEOUT) becomes a
503: a query that is wrong is still a bug, a 500. Nothing was decided: the request failed before
or inside its transaction, which rolled back. The pool reconnects by itself, so the next call
after the database is back succeeds without a restart.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from console.api_errors import error_body

logger = logging.getLogger("console.dependencies")

RETRY_AFTER_SECONDS = 5
MESSAGE = "The console cannot reach its database right now; nothing was changed. Retry shortly."


def is_database_unavailable(error: BaseException | None) -> bool:
    # OperationalError: refused, terminated ("administrator command" on restart), pool timeout
    # (console.database.DatabaseUnavailable). InterfaceError: a connection already closed.
    return isinstance(error, OperationalError | InterfaceError)


def unavailable_body(request_id: str | None) -> dict[str, object]:
    """The API envelope of a 503 dependency_unavailable."""
    return error_body(
        status_code=503,
        code="dependency_unavailable",
        message=MESSAGE,
        param=None,
        request_id=request_id,
    )


def log_unavailable(error: BaseException) -> None:
    # One line, no stack: the operator needs to know the database is gone, not where it was
    # noticed (the server's readiness check names it too).
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    logger.warning("database unavailable: %s", first_line)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it while handling the exception, so sys.exc_info() has it."""
    error = sys.exc_info()[1]
    if not is_database_unavailable(error):
        return defaults.server_error(request)
    assert error is not None
    log_unavailable(error)
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse(unavailable_body(getattr(request, "request_id", None)), status=503)
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
