"""POST /api/v1/requests/{id}/outcome: the agent says what the decided call did."""

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.native import MAX_TEXT, request_not_found
from agents.api.outputs import ApprovalRequestOutput
from agents.models import Agent
from approvals.agent_view import approval_request_representation
from approvals.models import OutcomeSource, OutcomeStatus
from approvals.selectors import approval_get_for_agent
from approvals.services import (
    OutcomeReport,
    approval_outcome_report,
)
from console.api_errors import error_responses
from console.api_fields import BoundedJSONField, CostField, StrictSerializer


class OutcomeReportInput(StrictSerializer):
    status = serializers.ChoiceField(
        choices=[OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED, OutcomeStatus.NOT_EXECUTED],
        help_text="succeeded or failed once the call ran; not_executed when it never started.",
    )
    result = BoundedJSONField(
        required=False, allow_null=True, help_text="A short result, or the full one within limits."
    )
    error = serializers.CharField(
        max_length=MAX_TEXT,
        required=False,
        allow_blank=True,
        help_text="What went wrong (failed), or why the call never ran (not_executed).",
    )
    duration_ms = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    cost = CostField(required=False, allow_null=True)
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        required=False,
        allow_blank=True,
        error_messages={"invalid": "Must be an ISO 4217 code such as EUR or USD."},
    )

    def to_report(self) -> OutcomeReport:
        data = self.validated_data
        return OutcomeReport(
            status=data["status"],
            result=data.get("result"),
            error=data.get("error", ""),
            duration_ms=data.get("duration_ms"),
            cost=data.get("cost"),
            currency=data.get("currency", ""),
        )


class ApprovalRequestOutcomeApi(APIView):
    @extend_schema(
        operation_id="report_approval_request_outcome",
        request=OutcomeReportInput,
        responses={
            201: ApprovalRequestOutput,
            200: OpenApiResponse(ApprovalRequestOutput, description="The same report again"),
            **error_responses(400, 401, 404, 409, 413),
        },
    )
    def post(self, request: Request, code: str) -> Response:
        agent: Agent = request.user  # type: ignore[assignment]
        approval = approval_get_for_agent(agent=agent, code=code)
        if approval is None:
            raise request_not_found()
        payload = OutcomeReportInput(data=request.data)
        payload.is_valid(raise_exception=True)
        _, created = approval_outcome_report(
            approval=approval, report=payload.to_report(), source=OutcomeSource.AGENT, agent=agent
        )
        return Response(
            approval_request_representation(approval),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
