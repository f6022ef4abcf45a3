"""The agent APIs' input limits: one set, applied alike by every agent API.

The native API (agents/api/native.py and its ASGI fast path), runs and traces (agents/api/runs.py),
HumanLayer (agents/humanlayer) and AAP (agents/aap) all take agent-supplied JSON, so all answer
the same way, each in the console's error envelope:

- a body over API_MAX_BODY_BYTES: 413 `payload_too_large`, before anything is parsed
  (console.middleware.ApiBodySizeLimitMiddleware, for every path is_agent_api_path names);
- JSON nested deeper than API_MAX_JSON_DEPTH: 400, before anything is validated (Python's json
  and everything that walks the value afterwards recurse per level: unbounded, a few hundred
  levels were a 500);
- one JSON field over API_MAX_FIELD_BYTES: 400 `too_large`, naming the field;
- a duration that is valid but huge is not refused: a request's timeout is shortened to
  APPROVAL_MAX_TIMEOUT_SECONDS and a long poll's wait to APPROVAL_LONG_POLL_MAX_SECONDS.
"""

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import serializers

from console.durations import duration_seconds  # noqa: F401  (part of the limits' API)

if TYPE_CHECKING:
    from console.api_errors import ApiError


def is_agent_api_path(path: str) -> bool:
    """Whether `path` belongs to an agent API, whose bodies are capped before parsing."""
    return path.startswith(("/api/", "/humanlayer/", settings.AAP_BASE_PATH + "/"))


def payload_too_large() -> "ApiError":
    # Imported here: console.api_errors loads DRF's settings, which import our parser, which
    # imports this module.
    from console.api_errors import ApiError

    limit = settings.API_MAX_BODY_BYTES
    return ApiError(
        status_code=413,
        code="payload_too_large",
        message=f"The request body is larger than the {limit} bytes allowed.",
    )


def too_deep_message() -> str:
    return f"JSON parse error - nested deeper than {settings.API_MAX_JSON_DEPTH} levels."


def json_depth_exceeds(value: Any, limit: int | None = None) -> bool:
    """Whether `value` nests objects and arrays deeper than `limit` (API_MAX_JSON_DEPTH)."""
    limit = settings.API_MAX_JSON_DEPTH if limit is None else limit
    # Iterative, so checking depth cannot itself run out of stack.
    pending = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            if depth > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children)
    return False


# json.dumps(value, ensure_ascii=False, separators=(",", ":")), without building an encoder for
# every value measured (json.dumps does, given any option): a few per agent call.
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON: how much it costs to store and to show."""
    return len(_compact_json(value).encode())


def field_size_check(size: int) -> None:
    """Refuse a JSON field of `size` bytes over API_MAX_FIELD_BYTES (400, naming the field)."""
    limit = settings.API_MAX_FIELD_BYTES
    if size > limit:
        raise serializers.ValidationError(
            f"Must be at most {limit} bytes as JSON.", code="too_large"
        )
