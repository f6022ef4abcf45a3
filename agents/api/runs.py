"""The agent REST API for runs and their traces, under /api/v1/runs.

One view per operation; serializers validate and shape, services write. A trace event is sent
flat: `type`, optional `occurred_at` and `metadata`, then the fields of its type.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.native import idempotency_key_header
from agents.models import CLOSED_RUN_STATUSES, Agent, Run, RunStatus, TraceEvent, TraceEventType
from agents.selectors import run_events, run_get_for_agent
from agents.services import NewTraceEvent, run_close, run_events_append, run_open
from approvals.audit.export import streamed_download
from approvals.models import ApprovalRequest
from approvals.run_export import CONTENT_TYPE, run_export_filename, run_export_start
from console.api_errors import ApiError, error_responses
from console.api_fields import BoundedJSONField, CostField, JSONObjectField, StrictSerializer

MAX_TEXT = 65_536
MAX_DIGEST = 128
MAX_EVENTS_PAGE = 500


# --- Runs ------------------------------------------------------------------------------------


class RunOpenInput(StrictSerializer):
    external_id = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="Your own id for the run, unique per agent. Opening again with the same "
        "external_id (and the same name, metadata and budget) returns the existing run.",
    )
    name = serializers.CharField(max_length=200)
    metadata = JSONObjectField(required=False)
    budget = CostField(
        required=False,
        allow_null=True,
        help_text="Optional cost budget for the run, in the same unit as event costs.",
    )


class RunOutput(serializers.Serializer):
    id = serializers.UUIDField(source="code")
    external_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    metadata = serializers.JSONField()
    budget = CostField(allow_null=True)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    close_reason = serializers.CharField(help_text="Why the run was closed, if a reason was given.")
    total_cost = CostField(help_text="The sum of the costs of the run's events so far.")
    over_budget = serializers.BooleanField(
        source="is_over_budget", help_text="True when a budget is set and total_cost exceeds it."
    )
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["external_id"] = data["external_id"] or None
        return data


class RunCloseInput(StrictSerializer):
    status = serializers.ChoiceField(choices=sorted(CLOSED_RUN_STATUSES))
    reason = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)


# --- Trace events ----------------------------------------------------------------------------


class _EventInput(StrictSerializer):
    occurred_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it happened by the agent's clock."
    )
    metadata = JSONObjectField(required=False, help_text="Anything else worth keeping.")

    def to_new_event(self) -> NewTraceEvent:
        data = dict(self.validated_data)
        event_type = data.pop("type")
        occurred_at = data.pop("occurred_at", None)
        cost = data.pop("cost", None)
        return NewTraceEvent(type=event_type, data=data, occurred_at=occurred_at, cost=cost)


class LlmCallEventInput(_EventInput):
    type = serializers.ChoiceField(choices=[TraceEventType.LLM_CALL.value])
    model = serializers.CharField(max_length=200)
    prompt = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    completion = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    prompt_digest = serializers.CharField(
        max_length=MAX_DIGEST, required=False, help_text="Send instead of the prompt to keep it."
    )
    completion_digest = serializers.CharField(max_length=MAX_DIGEST, required=False)
    input_tokens = serializers.IntegerField(min_value=0, required=False)
    output_tokens = serializers.IntegerField(min_value=0, required=False)
    cost = CostField(required=False, allow_null=True)


class ToolCallEventInput(_EventInput):
    type = serializers.ChoiceField(choices=[TraceEventType.TOOL_CALL.value])
    tool = serializers.CharField(max_length=200)
    arguments = JSONObjectField(required=False)
    result = BoundedJSONField(required=False, allow_null=True, help_text="What the tool returned.")
    error = serializers.CharField(
        max_length=MAX_TEXT, required=False, help_text="Why the tool failed (instead of result)."
    )
    approval = serializers.UUIDField(
        required=False, help_text="The approval request that gated this call, if any."
    )
    cost = CostField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "result" in attrs and "error" in attrs:
            raise serializers.ValidationError(
                {"error": ["A tool call has a result or an error, not both."]}
            )
        if "approval" in attrs:
            attrs["approval"] = str(attrs["approval"])  # stored in a JSON column
        return attrs


class MessageEventInput(_EventInput):
    type = serializers.ChoiceField(choices=[TraceEventType.MESSAGE.value])
    role = serializers.CharField(max_length=50, help_text="e.g. user, assistant, system, tool.")
    content = serializers.CharField(max_length=MAX_TEXT, allow_blank=True)


class NoteEventInput(_EventInput):
    type = serializers.ChoiceField(choices=[TraceEventType.NOTE.value])
    text = serializers.CharField(max_length=MAX_TEXT)


EVENT_INPUTS: dict[str, type[_EventInput]] = {
    TraceEventType.LLM_CALL: LlmCallEventInput,
    TraceEventType.TOOL_CALL: ToolCallEventInput,
    TraceEventType.MESSAGE: MessageEventInput,
    TraceEventType.NOTE: NoteEventInput,
}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="TraceEventInput",
        serializers={str(kind): serializer for kind, serializer in EVENT_INPUTS.items()},
        resource_type_field_name="type",
    )
)
class TraceEventField(serializers.Field):
    """One event, validated by the serializer of its `type`."""

    def to_internal_value(self, data: Any) -> NewTraceEvent:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        serializer_class = EVENT_INPUTS.get(data.get("type"))  # type: ignore[arg-type]
        if serializer_class is None:
            raise serializers.ValidationError(
                {"type": [f"Must be one of: {', '.join(EVENT_INPUTS)}."]}
            )
        event = serializer_class(data=data)
        if not event.is_valid():
            raise serializers.ValidationError(event.errors)
        return event.to_new_event()

    def to_representation(self, value: Any) -> Any:
        raise NotImplementedError("input only")


class TraceEventBatchInput(StrictSerializer):
    events = serializers.ListField(
        child=TraceEventField(),
        min_length=1,
        help_text="Appended in this order; at most TRACE_MAX_BATCH_EVENTS (default 100).",
    )

    def validate_events(self, events: list[NewTraceEvent]) -> list[NewTraceEvent]:
        limit = settings.TRACE_MAX_BATCH_EVENTS
        if len(events) > limit:
            raise serializers.ValidationError(
                f"At most {limit} events per batch; send the rest in another.", code="too_many"
            )
        return events


class TraceEventOutput(serializers.Serializer):
    """An event as stored: its sequence and server time, then the fields it was sent with."""

    sequence = serializers.IntegerField(help_text="1, 2, 3... per run, in append order.")
    type = serializers.ChoiceField(choices=TraceEventType.choices)
    occurred_at = serializers.DateTimeField(allow_null=True, help_text="The agent's clock.")
    recorded_at = serializers.DateTimeField(help_text="The console's clock.")
    cost = CostField(allow_null=True)

    def to_representation(self, instance: TraceEvent) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {**instance.data, **data}


class TraceEventListOutput(serializers.Serializer):
    events = TraceEventOutput(many=True)


_run_id = OpenApiParameter("code", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Run id")


def _run_or_404(request: Request, code: str) -> Run:
    agent: Agent = request.user  # type: ignore[assignment]
    run = run_get_for_agent(agent=agent, code=code)
    if run is None:
        raise ApiError(status_code=404, code="not_found", message="No such run.")
    return run


class RunOpenApi(APIView):
    @extend_schema(
        operation_id="open_run",
        request=RunOpenInput,
        responses={
            201: RunOutput,
            200: OpenApiResponse(RunOutput, description="A run with this external_id existed"),
            **error_responses(400, 401, 409, 413),
        },
    )
    def post(self, request: Request) -> Response:
        payload = RunOpenInput(data=request.data)
        payload.is_valid(raise_exception=True)
        agent: Agent = request.user  # type: ignore[assignment]
        run, created = run_open(agent=agent, **payload.validated_data)
        return Response(
            RunOutput(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class RunDetailApi(APIView):
    @extend_schema(
        operation_id="get_run",
        parameters=[_run_id],
        responses={200: RunOutput, **error_responses(401, 404)},
    )
    def get(self, request: Request, code: str) -> Response:
        return Response(RunOutput(_run_or_404(request, code)).data)


class RunEventsApi(APIView):
    @extend_schema(
        operation_id="append_run_events",
        parameters=[
            _run_id,
            OpenApiParameter(
                "Idempotency-Key",
                location=OpenApiParameter.HEADER,
                required=False,
                type=str,
                description="Optional, one per batch: a retry with the same key returns the "
                "events stored the first time (200) instead of appending them again.",
            ),
        ],
        request=TraceEventBatchInput,
        responses={
            201: OpenApiResponse(TraceEventListOutput, description="The events as stored"),
            200: OpenApiResponse(
                TraceEventListOutput, description="Replay of a batch with the same key"
            ),
            **error_responses(400, 401, 404, 409, 413),
        },
    )
    def post(self, request: Request, code: str) -> Response:
        run = _run_or_404(request, code)
        payload = TraceEventBatchInput(data=request.data)
        payload.is_valid(raise_exception=True)
        events, created = run_events_append(
            run=run,
            events=payload.validated_data["events"],
            batch_key=_batch_key(request),
        )
        return Response(
            TraceEventListOutput({"events": events}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="list_run_events",
        parameters=[
            _run_id,
            OpenApiParameter("after", int, description="Only events after this sequence."),
            OpenApiParameter(
                "limit", int, description=f"At most this many (<= {MAX_EVENTS_PAGE})."
            ),
        ],
        responses={200: TraceEventListOutput, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, code: str) -> Response:
        run = _run_or_404(request, code)
        after = _query_int(request, "after", default=0, maximum=2**31 - 1)
        limit = _query_int(request, "limit", default=100, maximum=MAX_EVENTS_PAGE) or 1
        events = run_events(run=run, after=after, limit=limit)
        return Response(TraceEventListOutput({"events": events}).data)


def _batch_key(request: Request) -> str:
    return idempotency_key_header(request)  # optional for a batch of events


def _query_int(request: Request, name: str, *, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ApiError(
            status_code=400,
            code="invalid_field",
            message=f"{name}: must be a non-negative integer.",
            param=name,
        )
    return min(int(raw), maximum)


class RunCloseApi(APIView):
    @extend_schema(
        operation_id="close_run",
        parameters=[_run_id],
        request=RunCloseInput,
        responses={
            200: OpenApiResponse(
                RunOutput,
                description="Closed; closing again with the same status returns it unchanged. "
                "Halting also denies the run's pending requests.",
            ),
            **error_responses(400, 401, 404, 409, 413),
        },
    )
    def post(self, request: Request, code: str) -> Response:
        run = _run_or_404(request, code)
        payload = RunCloseInput(data=request.data)
        payload.is_valid(raise_exception=True)
        run = run_close(
            run=run,
            status=payload.validated_data["status"],
            reason=payload.validated_data.get("reason", ""),
        )
        return Response(RunOutput(run).data)


class RunExportApi(APIView):
    @extend_schema(
        operation_id="export_run",
        parameters=[_run_id],
        responses={
            (200, CONTENT_TYPE): OpenApiResponse(
                OpenApiTypes.STR,
                description="The run's record for replay, as JSON Lines: its requests, the "
                "policy's verdicts, the decisions, the outcomes and the trace events in order, "
                "then the audit records that vouch for them and a closing SHA-256 "
                "(docs/outcomes.md, `manage.py run_export_verify`).",
            ),
            **error_responses(401, 404),
        },
    )
    def get(self, request: Request, code: str) -> Any:
        run = _run_or_404(request, code)
        # The agent's own run: every request in it is its own.
        stream = run_export_start(
            run=run, actor=request.user, via="agent_api", approvals=ApprovalRequest.objects.all()
        )
        return streamed_download(
            stream=stream, content_type=CONTENT_TYPE, filename=run_export_filename(run)
        )
