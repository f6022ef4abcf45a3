"""POST /api/v1/questions: the agent asks reviewers a question and gets a typed answer
(docs/questions.md). Reading, waiting and cancelling are the request's own (native.py)."""

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api.links import links_field, links_stored
from agents.api.native import (
    MAX_LABEL,
    MAX_LABELS,
    MAX_TEXT,
    ApprovalRequestCreateApi,
    json_schema_checked,
)
from agents.api.outputs import ApprovalRequestOutput
from approvals.models import Impact, Kind
from approvals.services import (
    DURATION_PATTERN,
    Submission,
)
from console import api_limits
from console.api_errors import error_responses
from console.api_fields import JSONObjectField, StrictSerializer

MAX_ANSWER_SCHEMA = 20_000
QUESTION_TOOL = "ask_human"


class QuestionCreateInput(StrictSerializer):
    """A question for a person, with the JSON Schema the answer must satisfy."""

    question = serializers.CharField(
        max_length=MAX_TEXT, help_text="What the agent asks, shown to reviewers as its words."
    )
    answer_schema = JSONObjectField(
        help_text="JSON Schema of the answer. Reviewers get a form with one field per property "
        "of an object schema; the answer is validated against it before the agent sees it. "
        f"At most {MAX_ANSWER_SCHEMA} characters as JSON."
    )
    tool = serializers.CharField(
        max_length=200,
        required=False,
        help_text=f'A name policies can route on (default "{QUESTION_TOOL}").',
    )
    timeout = serializers.RegexField(
        DURATION_PATTERN,
        required=False,
        help_text='How long reviewers have to answer, e.g. "30m"; unanswered, it expires.',
        error_messages={"invalid": 'Must be a duration such as "30s", "30m" or "24h".'},
    )
    reasoning = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    context = JSONObjectField(required=False)  # type: ignore[assignment]
    impact = serializers.ChoiceField(choices=Impact.choices, required=False)
    run = serializers.UUIDField(required=False, allow_null=True)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=MAX_LABEL), max_length=MAX_LABELS, required=False
    )
    links = links_field()

    def validate_question(self, question: str) -> str:
        if not question.strip():
            raise serializers.ValidationError("The question must not be blank.")
        return question

    def validate_timeout(self, timeout: str) -> str:
        api_limits.field_size_check(len(timeout))
        return timeout

    def validate_answer_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(schema)) > MAX_ANSWER_SCHEMA:
            raise serializers.ValidationError(f"At most {MAX_ANSWER_SCHEMA} characters as JSON.")
        return json_schema_checked(schema)

    def to_submission(self) -> Submission:
        data = self.validated_data
        return Submission(
            kind=Kind.QUESTION,
            tool=data.get("tool") or QUESTION_TOOL,
            arguments={},
            summary=data["question"],
            answer_schema=data["answer_schema"],
            timeout=data.get("timeout") or f"{settings.APPROVAL_DEFAULT_TIMEOUT_SECONDS}s",
            reasoning=data.get("reasoning", ""),
            context=data.get("context") or {},
            impact=data.get("impact") or Impact.MEDIUM,
            run=str(data["run"]) if data.get("run") else None,
            labels=data.get("labels") or [],
            links=links_stored(data.get("links")),
        )


class QuestionCreateApi(ApprovalRequestCreateApi):
    """A question is an approval request of kind `question`: read, long-polled and cancelled
    at /requests/{id} like any other. Its own endpoint, so each body has its own required
    fields in the schema (an approval's tool and arguments, a question's text and schema)."""

    input_serializer = QuestionCreateInput

    @extend_schema(
        operation_id="create_question",
        request=QuestionCreateInput,
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
        return super().post(request)


# Any number of digits: a valid wait is capped, never refused for being long.
