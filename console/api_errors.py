"""One error envelope for every API: {"error": {type, code, message, param, request_id}}.

The shape is the Agent Approval Protocol's ErrorResponse, so native and AAP clients parse errors
the same way. Error bodies never carry credentials, stack traces or internals.
"""

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

_TYPE_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    403: "authorization",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limit",
    500: "internal",
    503: "dependency",
}


class ApiError(exceptions.APIException):
    """An API error with an explicit code and, where one field is at fault, its name."""

    def __init__(
        self, *, status_code: int, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.param = param


def error_body(
    *, status_code: int, code: str, message: str, param: str | None, request_id: str | None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": _TYPE_BY_STATUS.get(status_code, "invalid_request"),
        "code": code,
        "message": message,
    }
    if param:
        error["param"] = param
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str]:
    """Flatten DRF's nested validation errors into (param, code, message) for the first one."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_validation_error(first, f"{path}[0]" if path else path)
        return _first_validation_error(first, path)
    code = getattr(detail, "code", "invalid") or "invalid"
    message = str(detail)
    param = path or None
    if param and not message.lower().startswith(param.split(".")[-1].lower()):
        message = f"{param}: {message}"
    return param, str(code), message


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    request = context.get("request")
    request_id = getattr(request, "request_id", None) if request is not None else None
    if isinstance(exc, ApiError):
        param, code, message = exc.param, exc.error_code, str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        param, code, message = _first_validation_error(exc.detail)
        code = "invalid_field" if code in {"invalid", "required", "null", "blank"} else code
        if param is None:
            code = code or "invalid_request"
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        param, code, message = None, "invalid_credential", str(exc.detail)
        response.status_code = status.HTTP_401_UNAUTHORIZED
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        param, code, message = None, getattr(exc, "default_code", "error"), str(detail)
    response.data = error_body(
        status_code=response.status_code,
        code=code,
        message=message,
        param=param,
        request_id=request_id,
    )
    return response
