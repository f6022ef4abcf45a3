"""Cross-cutting HTTP middleware."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from console.api_errors import error_body
from console.api_limits import is_agent_api_path, payload_too_large
from console.request_context import bound_request_context, request_context_from_http

logger = logging.getLogger("console.http")

# A caller may pass its own X-Request-ID to tie its logs to ours; anything odd is replaced.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def request_id_for(incoming: str, *, path: str) -> str:
    """The caller's X-Request-ID if it is a sensible one, else a fresh UUID."""
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else str(uuid.uuid4())
    if path.startswith(settings.AAP_BASE_PATH + "/") and not _is_uuid(request_id):
        request_id = str(uuid.uuid4())  # AAP says request_id is a UUID
    return request_id


class RequestIdMiddleware(MiddlewareMixin):
    """Give every exchange an id, echoed as X-Request-ID and used in error bodies and logs."""

    def _assign(self, request: HttpRequest) -> str:
        request_id = request_id_for(request.headers.get("X-Request-ID", ""), path=request.path)
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.async_mode:
            return self.__acall__(request)
        request_id = self._assign(request)
        started = time.monotonic()
        # Bound for the whole exchange: logs, audit records and enqueued tasks all read it.
        with bound_request_context(request_context_from_http(request, request_id=request_id)):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id  # type: ignore[index]
            _log_exchange(request, response, started)  # type: ignore[arg-type]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request_id = self._assign(request)
        started = time.monotonic()
        with bound_request_context(request_context_from_http(request, request_id=request_id)):
            response = await self.get_response(request)  # type: ignore[misc]
            response["X-Request-ID"] = request_id
            _log_exchange(request, response, started)
        return response


class ApiBodySizeLimitMiddleware(MiddlewareMixin):
    """Answer 413 in the API error envelope to agent API bodies over API_MAX_BODY_BYTES.

    Checked before any view parses or stores anything. The declared Content-Length is checked
    first; the body actually read is checked too, since a chunked upload declares none.
    """

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        if request.method not in _METHODS_WITH_BODY or not is_agent_api_path(request.path):
            return None
        limit = settings.API_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
            too_large = declared > limit or len(request.body) > limit
        except ValueError:
            too_large = False  # a malformed length is the parser's to reject
        except RequestDataTooBig:
            too_large = True
        if not too_large:
            return None
        refusal = payload_too_large()
        return JsonResponse(
            error_body(
                status_code=413,
                code=refusal.error_code,
                message=str(refusal.detail),
                param=None,
                request_id=getattr(request, "request_id", None),
            ),
            status=413,
        )

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.async_mode:
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return await self.get_response(request)  # type: ignore[misc,no-any-return]


_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _log_exchange(request: HttpRequest, response: HttpResponse, started: float) -> None:
    log_exchange(
        method=request.method or "", path=request.path, status=response.status_code, started=started
    )


def log_exchange(
    *, method: str, path: str, status: int, started: float, request_id: str = ""
) -> None:
    """The access log line: one per exchange, JSON in production (settings.LOGGING).

    `request_id`: for callers outside the bound request context (the agent API's ASGI fast
    path); otherwise the context's id is added by the log filter.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    extra: dict[str, object] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if request_id:
        extra["request_id"] = request_id
    logger.info("%s %s %s", method, path, status, extra=extra)
