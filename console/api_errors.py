"""One error envelope for every API: {"error": {type, code, message, param, request_id}}.

The shape is the Agent Approval Protocol's ErrorResponse, so native and AAP clients parse errors
the same way. Error bodies never carry credentials, stack traces or internals.
"""

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from console.errors import DomainError

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

    wait: int | None = None  # DRF's handler sends it as Retry-After

    def __init__(
        self, *, status_code: int, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.param = param

    @classmethod
    def of(cls, error: DomainError) -> "ApiError":
        """A domain error as the API answers it: its own status, code, message and param."""
        api_error = cls(
            status_code=error.http_status, code=error.code, message=error.message, param=error.param
        )
        if error.retry_after is not None:
            api_error.wait = error.retry_after  # DRF sends it as Retry-After
        return api_error


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
    elif isinstance(exc, DomainError):
        exc = ApiError.of(exc)
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


# --- OpenAPI documentation of the envelope ---------------------------------------------------


@extend_schema_serializer(component_name="ErrorDetail")
class ErrorDetailOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=sorted(set(_TYPE_BY_STATUS.values())))
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid_field`.")
    message = serializers.CharField(help_text="For people; names the field at fault.")
    param = serializers.CharField(
        required=False, help_text="The field (or header) at fault, when there is one."
    )
    request_id = serializers.CharField(help_text="Matches the X-Request-ID response header.")


@extend_schema_serializer(component_name="Error")
class ErrorOutput(serializers.Serializer):
    error = ErrorDetailOutput()


_ERROR_DESCRIPTIONS = {
    400: "Bad input: `param` names the field; nothing was stored.",
    401: "Missing, malformed or revoked credential.",
    403: "Not done through this API; the message says where it is done instead.",
    404: "No such resource for this agent (another agent's resources look absent too).",
    409: "Conflict with the current state; nothing was changed.",
    413: "The request body is larger than API_MAX_BODY_BYTES; nothing was parsed or stored.",
}


def error_responses(*status_codes: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the error envelope, for `extend_schema(responses=...)`."""
    return {
        code: OpenApiResponse(ErrorOutput, description=_ERROR_DESCRIPTIONS[code])
        for code in status_codes
    }
