"""The agent REST API for approval requests, under /api/v1/.

One view per operation; serializers validate and shape, services write. The long poll is async
so a waiting agent holds no thread: it sleeps on a channel-layer message, never polls the table.
"""

import re
import threading
from functools import partial
from typing import Any

import jsonschema
from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.links import links_field, links_stored
from agents.api.long_poll import long_poll_document
from agents.api.outputs import ApprovalRequestOutput
from agents.models import Agent
from approvals.agent_view import approval_request_representation
from approvals.models import Impact
from approvals.selectors import approval_get_for_agent
from approvals.services import (
    DURATION_PATTERN,
    Submission,
    approval_request_cancel,
    approval_request_create,
    approval_request_expire_if_overdue,
    arguments_schema_errors,
)
from console import api_limits
from console.api_errors import ApiError, error_responses
from console.api_fields import JSONObjectField, StrictSerializer

MAX_TEXT = 20_000
MAX_LABELS = 20
MAX_LABEL = 50


class ApprovalRequestCreateInput(StrictSerializer):
    tool = serializers.CharField(max_length=200)
    arguments = JSONObjectField()
    timeout = serializers.RegexField(
        DURATION_PATTERN,
        required=False,
        help_text='How long reviewers have to decide, e.g. "30s", "30m", "24h".',
        error_messages={"invalid": 'Must be a duration such as "30s", "30m" or "24h".'},
    )
    summary = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    reasoning = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    # A field named like Serializer.context: DRF's metaclass moves declared fields out of the
    # class, so self.context is untouched; the stubs see a clashing attribute.
    context = JSONObjectField(required=False)  # type: ignore[assignment]
    confidence = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    impact = serializers.ChoiceField(choices=Impact.choices, required=False)
    run = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The id of one of your runs this request is part of.",
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=MAX_LABEL),
        max_length=MAX_LABELS,
        required=False,
        help_text=f"Short tags for reviewers (at most {MAX_LABELS}, each up to {MAX_LABEL} chars).",
    )
    links = links_field()
    arguments_schema = JSONObjectField(
        required=False,
        allow_null=True,
        help_text="JSON Schema of the tool's arguments. `arguments` must satisfy it, and so must "
        "any arguments a reviewer approves instead.",
    )

    def validate_timeout(self, timeout: str) -> str:
        # Any number of digits is a valid duration (shortened when granted); stored, it is held
        # to the field cap like any other agent-supplied field.
        api_limits.field_size_check(len(timeout))
        return timeout

    def validate_arguments_schema(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if schema is None else json_schema_checked(schema)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = arguments_schema_errors(
            schema=attrs.get("arguments_schema"), arguments=attrs["arguments"]
        )
        if errors:
            raise serializers.ValidationError(
                {"arguments": [f"Does not match arguments_schema: {errors[0]}"]}
            )
        return attrs

    def to_submission(self) -> Submission:
        return self.submission_from(self.validated_data)

    @staticmethod
    def submission_from(data: dict[str, Any]) -> Submission:
        return Submission(
            tool=data["tool"],
            arguments=data["arguments"],
            timeout=data.get("timeout") or f"{settings.APPROVAL_DEFAULT_TIMEOUT_SECONDS}s",
            summary=data.get("summary", ""),
            reasoning=data.get("reasoning", ""),
            context=data.get("context") or {},
            confidence=data.get("confidence"),
            impact=data.get("impact") or Impact.MEDIUM,
            run=str(data["run"]) if data.get("run") else None,
            labels=data.get("labels") or [],
            links=links_stored(data.get("links")),
            arguments_schema=data.get("arguments_schema"),
        )


def json_schema_checked(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema the agent sent: valid as a schema, its $refs within itself only."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        raise serializers.ValidationError(f"Not a valid JSON Schema: {error.message}") from None
    external = _external_refs(schema)
    if external:
        raise serializers.ValidationError(
            f"Only references within the schema (#...) are allowed, not {external[0]!r}."
        )
    return schema


# A reviewer fills in a form generated from the schema: a page of fields, not a document.
def _external_refs(schema: Any) -> list[str]:
    """`$ref`s that point outside the schema: the console never fetches them."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        found = [ref] if isinstance(ref, str) and not ref.startswith("#") else []
        return found + [r for value in schema.values() for r in _external_refs(value)]
    if isinstance(schema, list):
        return [r for value in schema for r in _external_refs(value)]
    return []


# DRF builds a serializer's fields anew for every instance (a deep copy re-running each
# field's __init__), which cost more than the rest of a fast-path request. A serializer without
# data or instance can validate or represent any number of values in turn, as DRF's own
# ListSerializer does with its child; one per thread, since fields are bound to their parent.
_per_thread = threading.local()


def _reusable(serializer_class: type[serializers.Serializer]) -> Any:
    name = serializer_class.__name__
    serializer = getattr(_per_thread, name, None)
    if serializer is None:
        serializer = serializer_class()
        setattr(_per_thread, name, serializer)
    return serializer


def approval_request_submission(data: Any) -> Submission:
    """Validate a create body as ApprovalRequestCreateInput does; raises its ValidationError."""
    serializer = _reusable(ApprovalRequestCreateInput)
    return serializer.submission_from(serializer.run_validation(data))  # type: ignore[no-any-return]


def request_not_found() -> ApiError:
    return ApiError(status_code=404, code="not_found", message="No such approval request.")


def required_idempotency_key(request: Request) -> str:
    return idempotency_key_header(
        request, required="The Idempotency-Key header is required: one key per execution attempt."
    )


MAX_IDEMPOTENCY_KEY = 255


def idempotency_key_header(request: Request, *, required: str = "", strip: bool = True) -> str:
    """The Idempotency-Key header, for every agent API: at most 255 characters, and where
    `required` (the message) is given, present. Empty when it is optional and absent."""
    key = request.headers.get("Idempotency-Key", "")
    key = key.strip() if strip else key
    if not key and required:
        raise ApiError(
            status_code=400,
            code="missing_idempotency_key",
            message=required,
            param="Idempotency-Key",
        )
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            status_code=400,
            code="invalid_idempotency_key",
            message=f"The Idempotency-Key header must be at most {MAX_IDEMPOTENCY_KEY} characters.",
            param="Idempotency-Key",
        )
    return key


class ApprovalRequestCreateApi(APIView):
    input_serializer: type[Any] = ApprovalRequestCreateInput

    @extend_schema(
        operation_id="create_approval_request",
        request=ApprovalRequestCreateInput,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", location=OpenApiParameter.HEADER, required=True, type=str
            )
        ],
        responses={
            201: ApprovalRequestOutput,
            200: OpenApiResponse(ApprovalRequestOutput, description="Replay of the same key"),
            **error_responses(400, 401, 409, 413),
        },
    )
    def post(self, request: Request) -> Response:
        key = required_idempotency_key(request)
        payload = self.input_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent: Agent = request.user  # type: ignore[assignment]
        approval, created = approval_request_create(
            agent=agent, idempotency_key=key, submission=payload.to_submission()
        )
        return Response(
            approval_request_representation(approval),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


_WAIT = re.compile(r"^(?P<n>\d+)(?P<unit>s|m|h)?$")


def parse_wait(raw: str | None) -> float:
    """`?wait=` as seconds ("25", "25s", "1m"), capped at the long-poll maximum."""
    if raw is None or raw == "":
        return 0.0
    match = _WAIT.match(raw)
    if match is None:
        raise ApiError(
            status_code=400,
            code="invalid_field",
            message='wait: must be a number of seconds or a duration such as "30s".',
            param="wait",
        )
    maximum = settings.APPROVAL_LONG_POLL_MAX_SECONDS
    return float(api_limits.duration_seconds(match["n"], match["unit"] or "s", maximum=maximum))


class ApprovalRequestDetailApi(AsyncAPIView):
    @extend_schema(
        operation_id="get_approval_request",
        parameters=[
            OpenApiParameter(
                "wait",
                type=str,
                description="Long poll: hold the response until the request is decided or this "
                "many seconds pass (at most 30). Returns `pending` at the timeout.",
            )
        ],
        responses={200: ApprovalRequestOutput, **error_responses(400, 401, 404)},
    )
    async def get(self, request: Request, code: str) -> Response:
        wait = parse_wait(request.query_params.get("wait"))
        agent: Agent = request.user  # type: ignore[assignment]
        found = await sync_to_async(approval_read_for_agent)(agent=agent, code=code)
        if found is None:
            raise request_not_found()
        read_again = partial(_document_for_agent, agent, code)
        answer = await long_poll_document(code=code, found=found, wait=wait, read_again=read_again)
        if answer is None:
            raise request_not_found()
        return Response(answer)


async def _document_for_agent(agent: Agent, code: str) -> dict[str, Any] | None:
    found = await sync_to_async(approval_read_for_agent)(agent=agent, code=code)
    return None if found is None else found[0]


def approval_read_for_agent(*, agent: Agent, code: str) -> tuple[dict[str, Any], float] | None:
    """What the agent API says about one of the agent's requests, and the seconds left to its
    deadline; None if it is not the agent's. An overdue request is expired first, so an agent
    never reads `pending` after the deadline. Used by this view and the ASGI fast path."""
    approval = approval_get_for_agent(agent=agent, code=code)
    if approval is None:
        return None
    approval = approval_request_expire_if_overdue(approval=approval)
    deadline_in = (approval.deadline_at - timezone.now()).total_seconds()
    return approval_request_representation(approval), deadline_in


class ApprovalRequestCancelApi(APIView):
    @extend_schema(
        operation_id="cancel_approval_request",
        request=None,
        responses={200: ApprovalRequestOutput, **error_responses(401, 404, 409)},
    )
    def post(self, request: Request, code: str) -> Response:
        agent: Agent = request.user  # type: ignore[assignment]
        approval = approval_get_for_agent(agent=agent, code=code)
        if approval is None:
            raise request_not_found()
        approval = approval_request_cancel(approval=approval, agent=agent)
        return Response(approval_request_representation(approval))
