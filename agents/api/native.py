"""The agent REST API for approval requests, under /api/v1/.

One view per operation; serializers validate and shape, services write. The long poll is async
so a waiting agent holds no thread: it sleeps on a channel-layer message, never polls the table.
"""

import re
import threading
from functools import cached_property, partial
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
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.links import LinkOutput, links_field, links_stored
from agents.api.long_poll import long_poll_document
from agents.models import Agent
from approvals.agent_view import approval_outcome, approval_request_representation
from approvals.models import ApprovalRequest, Impact, Kind, OutcomeSource, OutcomeStatus, Status
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
from console.api_fields import CostField, JSONObjectField, StrictSerializer

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


class DecisionOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[s for s in Status.choices if s[0] != Status.PENDING],
        help_text="Only `approved` allows the call.",
    )
    note = serializers.CharField(
        help_text="The reviewer's note, or for a denial the reason (from the console itself when "
        "`decided_by` is `system`, e.g. a halted run)."
    )
    decided_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Approved only: start the call before this time, or not at all."
    )
    decided_by = serializers.SerializerMethodField(
        help_text="`reviewer` for a person, `system` for the console (expiry, halted run)."
    )
    approved_arguments = serializers.SerializerMethodField(
        help_text="Approved only: the arguments to run. They differ from the submitted ones when "
        "the reviewer approved with changes (then `arguments_changed` is true)."
    )
    arguments_changed = serializers.SerializerMethodField(
        help_text="True when the reviewer approved with changes: run `approved_arguments`, "
        "not the submitted arguments."
    )

    answer = serializers.SerializerMethodField(
        help_text="Questions only: the reviewer's answer, valid against `answer_schema`; null "
        "when the question was declined (`denied`, the reason in `note`) or expired."
    )

    @extend_schema_field({"nullable": True})  # type: ignore[misc]
    def get_answer(self, decision: Any) -> Any:
        return decision.answer if decision.status == Status.APPROVED else None

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {}})  # type: ignore[misc]
    def get_approved_arguments(self, decision: Any) -> dict[str, Any] | None:
        if decision.status != Status.APPROVED:
            return None
        if decision.approved_arguments is not None:
            return decision.approved_arguments  # type: ignore[no-any-return]
        return decision.approval.arguments  # type: ignore[no-any-return]

    def get_arguments_changed(self, decision: Any) -> bool:
        return decision.approved_arguments is not None

    @extend_schema_field(serializers.ChoiceField(choices=["reviewer", "system"]))  # type: ignore[misc]
    def get_decided_by(self, decision: Any) -> str:
        return "reviewer" if decision.reviewer_id else "system"


class ShadowMatchOutput(serializers.Serializer):
    rule = serializers.CharField()
    outcome = serializers.CharField()
    reason = serializers.CharField()


class PolicyOutput(serializers.Serializer):
    """How the console's policy decided this request when it was created."""

    rule = serializers.CharField(
        source="rule_name", allow_null=True, help_text="The rule that decided; null by default."
    )
    outcome = serializers.ChoiceField(choices=["approve", "deny", "hold"])
    reason = serializers.CharField(
        help_text="Which rule decided and why, in words. Values the agent supplied (the tool, an "
        "argument's value, the run's name) appear as quoted JSON literals, cut to 120 characters."
    )
    decided_by = serializers.CharField(
        help_text="rule, default, error (a rule could not be evaluated), throttle, budget, "
        "halt (the agent is halted) or run (the run is closed)."
    )
    team = serializers.CharField(source="held_for_team.name", allow_null=True, default=None)
    required_approvals = serializers.IntegerField(source="approval.required_approvals")
    on_timeout = serializers.CharField(help_text="What happens if nobody decides: deny.")
    shadow_matches = ShadowMatchOutput(
        many=True, help_text="Shadow rules that matched: recorded, without effect."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["rule"] = data["rule"] or None
        return data


class OutcomeOutput(serializers.Serializer):
    """What happened after the decision: reported by the agent, read from its run's trace, or
    marked `not_reported` by the console when an approval's validity passed with no word."""

    status = serializers.ChoiceField(choices=OutcomeStatus.choices)
    result = serializers.JSONField(allow_null=True, help_text="The agent's own words: untrusted.")
    error = serializers.CharField(help_text="The agent's own words: untrusted.")
    duration_ms = serializers.IntegerField(allow_null=True)
    cost = CostField(allow_null=True)
    currency = serializers.CharField(allow_null=True, help_text="ISO 4217, when stated.")
    # A field named like Field.source: DRF's metaclass moves declared fields out of the class;
    # the stubs see a clashing attribute.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=OutcomeSource.choices,
        help_text="agent (reported), trace (a tool call in its run's trace), system (the console "
        "marked it not_reported).",
    )
    reported_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["currency"] = data["currency"] or None
        return data


@extend_schema_field(DecisionOutput)
class DecisionField(serializers.Field):
    """The outcome: absent while the request is pending, present once it is terminal."""

    # A plain (not read-only) optional field, so the schema does not list it as required.
    def to_representation(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        if approval.status == Status.PENDING or not hasattr(approval, "decision"):
            return None
        return self._decision_output.to_representation(approval.decision)  # type: ignore[no-any-return]

    @cached_property
    def _decision_output(self) -> DecisionOutput:
        return DecisionOutput()


class ApprovalRequestOutput(serializers.Serializer):
    id = serializers.UUIDField(source="code")
    tool = serializers.CharField()
    arguments = serializers.JSONField()
    timeout = serializers.CharField()
    summary = serializers.CharField()
    reasoning = serializers.CharField()
    # A field named like Serializer.context: DRF's metaclass moves declared fields out of the
    # class, so self.context is untouched; the stubs see a clashing attribute.
    context = serializers.JSONField()  # type: ignore[assignment]
    confidence = serializers.FloatField(allow_null=True)
    impact = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    hold_reason = serializers.CharField(
        help_text="Why the console held this request for review; the agent's own values in it "
        "are quoted JSON literals."
    )
    run = serializers.UUIDField(source="run.code", allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    links = LinkOutput(many=True)
    arguments_schema = serializers.JSONField(allow_null=True)
    kind = serializers.ChoiceField(
        choices=Kind.choices,
        help_text="`question`: created by POST /questions, answered rather than approved.",
    )
    answer_schema = serializers.JSONField(
        allow_null=True, help_text="Questions only: the JSON Schema the answer satisfies."
    )
    created_at = serializers.DateTimeField()
    deadline_at = serializers.DateTimeField()
    decision = DecisionField(source="*", required=False)
    policy = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField(
        help_text="What happened after the decision; null until reported."
    )

    @extend_schema_field(OutcomeOutput(allow_null=True))
    def get_outcome(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        outcome = approval_outcome(approval)
        return None if outcome is None else self._outcome_output.to_representation(outcome)

    @cached_property
    def _outcome_output(self) -> OutcomeOutput:
        return OutcomeOutput()

    @extend_schema_field(PolicyOutput(allow_null=True))
    def get_policy(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        evaluation = getattr(approval, "policy_evaluation", None)
        return None if evaluation is None else self._policy_output.to_representation(evaluation)

    @cached_property
    def _policy_output(self) -> PolicyOutput:
        # One nested serializer per output serializer, reused: see _reusable().
        return PolicyOutput()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["decision"] is None:
            del data["decision"]
        return data


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
