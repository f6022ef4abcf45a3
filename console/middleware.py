"""Cross-cutting HTTP middleware."""

import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

# A caller may pass its own X-Request-ID to tie its logs to ours; anything odd is replaced.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class RequestIdMiddleware:
    """Give every exchange an id, echoed as X-Request-ID and used in error bodies and logs."""

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _assign(self, request: HttpRequest) -> str:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        if request.path.startswith(settings.AAP_BASE_PATH + "/") and not _is_uuid(request_id):
            request_id = str(uuid.uuid4())  # AAP says request_id is a UUID
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self.__acall__(request)
        request_id = self._assign(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id  # type: ignore[index]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request_id = self._assign(request)
        response = await self.get_response(request)  # type: ignore[misc]
        response["X-Request-ID"] = request_id
        return response
