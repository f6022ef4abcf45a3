"""The reviewer REST API, under /api/v1/reviewer/: list, read, decide, comment, escalate (to a
team, or to the next step of the request's escalation chain).

For teams building their own tools. Same rules as the pages, through the same selectors and
services: a request the caller may not see is 404; a decision someone else made first is 409.
Authentication: the browser session (CSRF-checked on writes) or `Authorization: Token acr_…`
for scripts (approvals/reviewer_tokens.py). Agent credentials are not accepted here.
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.outputs import ApprovalRequestOutput
from agents.models import Run
from approvals.access import approvals_visible_to, reviewer_may_see_run
from approvals.audit.export import streamed_download
from approvals.escalations import approval_request_escalate_next_step
from approvals.exceptions import (
    ApprovalNotVisible,
    RunNotVisible,
)
from approvals.models import ApprovalRequest, Team
from approvals.reviewer_tokens import ReviewerTokenAuthentication
from approvals.reviews import (
    check_approval_request_answer,
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_deny,
    check_approval_request_escalate,
)
from approvals.run_export import CONTENT_TYPE, run_export_filename, run_export_start
from approvals.selectors import (
    QUEUE_PAGE_MAX,
    InvalidCursor,
    QueueFilters,
    approval_get_for_reviewer,
    approvals_history_page,
    approvals_queue_page,
)
from console.api_errors import ApiError
from console.api_fields import JSONObjectField, StrictSerializer


class IsReviewer(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user is not None and user.is_authenticated and user.is_active)


class ReviewerApi(APIView):
    # Token first: an unauthenticated call then answers 401 with a WWW-Authenticate header.
    authentication_classes = [ReviewerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsReviewer]

    def get_approval(self, request: Request, code: str) -> ApprovalRequest:
        approval = approval_get_for_reviewer(user=request.user, code=code)
        if approval is None:
            raise ApprovalNotVisible()
        return approval


class ReviewerApprovalOutput(ApprovalRequestOutput):
    agent = serializers.CharField(source="agent.name")
    team = serializers.CharField(source="team.name", allow_null=True, default=None)
    required_approvals = serializers.IntegerField()
    approved_by = serializers.ListField(child=serializers.CharField(), source="voters")
    claimed_by = serializers.SerializerMethodField()
    proposed_changes = serializers.SerializerMethodField(
        help_text="Changed arguments reviewers approved that wait for more approvals (a quorum, "
        "or the team the policy routes them to). Approve exactly these with `arguments`."
    )

    def get_proposed_changes(self, approval: ApprovalRequest) -> list[dict[str, Any]]:
        return [
            {"arguments": proposal.arguments, "approved_by": proposal.approved_by}
            for proposal in getattr(approval, "proposals", [])
        ]

    def get_claimed_by(self, approval: ApprovalRequest) -> str | None:
        claim = getattr(approval, "live_claim", None)
        return claim.reviewer.get_username() if claim is not None else None


class ApproveInput(StrictSerializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    arguments = JSONObjectField(
        required=False, help_text="Approve with changes: the arguments the agent runs instead."
    )
    confirm = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        trim_whitespace=False,  # the tool's name exactly
        help_text="The request's `tool`, exactly: the confirmation that approving a `high` or "
        "`critical` impact request needs, as the decision page asks for it. Without it such an "
        "approval is refused (400 `confirmation_required`, `param` `confirm`) and nothing is "
        "recorded. Optional for other impacts, but when sent it must name the tool.",
    )


class AnswerInput(StrictSerializer):
    answer = serializers.JSONField(
        allow_null=True, help_text="The answer: any JSON value valid against `answer_schema`."
    )
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True)


class DenyInput(StrictSerializer):
    reason = serializers.CharField(max_length=5000)


class CommentInput(StrictSerializer):
    note = serializers.CharField(max_length=5000)


class EscalateInput(StrictSerializer):
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all())
    note = serializers.CharField(max_length=5000)


class EscalateNextStepInput(StrictSerializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True)


class EscalateNextStepOutput(serializers.Serializer):
    id = serializers.UUIDField()
    step = serializers.IntegerField(help_text="The position of the step that fired.")
    team = serializers.CharField(allow_null=True, help_text="The team the request is with now.")


def _fresh(request: Request, code: str) -> dict[str, Any]:
    approval = approval_get_for_reviewer(user=request.user, code=code)
    if approval is None:
        # Escalated away from the caller's teams just after they acted: what they did stands;
        # say which request and how it stands, nothing of where it went.
        status_now = ApprovalRequest.objects.filter(code=code).values_list("status", flat=True)
        return {"id": str(code), "status": status_now.first()}
    return ReviewerApprovalOutput(approval).data  # type: ignore[return-value]


LIST_DEFAULT_LIMIT = 50


class ReviewerRequestListOutput(serializers.Serializer):
    """The list's shape for the schema (the view builds the dict itself)."""

    # DRF takes declared fields off the class, so this does not hide Serializer.data.
    data = ReviewerApprovalOutput(many=True)  # type: ignore[assignment]
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text="Pass as `cursor` for the next page; null on the last page.",
    )


def _list_limit(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    if not raw:
        return LIST_DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= QUEUE_PAGE_MAX:
        raise ApiError(
            status_code=400,
            code="invalid_field",
            message=f"limit: must be a whole number from 1 to {QUEUE_PAGE_MAX}.",
            param="limit",
        )
    return int(raw)


class ReviewerRequestListApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_list_requests",
        description="Pending requests in queue order, or decided ones newest first, a page at a "
        "time: follow `next_cursor` (with the same filters) until it is null.",
        parameters=[
            OpenApiParameter("state", type=str, enum=["pending", "decided"]),
            OpenApiParameter("agent", type=str),
            OpenApiParameter("tool", type=str),
            OpenApiParameter("impact", type=str),
            OpenApiParameter("team", type=str),
            OpenApiParameter("mine", type=bool, description="Claimed by me"),
            OpenApiParameter("q", type=str, description="Search tool, summary and arguments"),
            OpenApiParameter(
                "limit",
                type=int,
                description=f"Rows per page, 1 to {QUEUE_PAGE_MAX} (default {LIST_DEFAULT_LIMIT}).",
            ),
            OpenApiParameter("cursor", type=str, description="`next_cursor` of the page before"),
        ],
        responses={200: ReviewerRequestListOutput},
    )
    def get(self, request: Request) -> Response:
        state = request.query_params.get("state", "pending")
        if state not in {"pending", "decided"}:
            raise ApiError(
                status_code=400,
                code="invalid_field",
                message='state: must be "pending" or "decided".',
                param="state",
            )
        filters = QueueFilters.from_query(request.query_params)
        page_of = approvals_queue_page if state == "pending" else approvals_history_page
        try:
            page = page_of(
                user=request.user,
                filters=filters,
                limit=_list_limit(request),
                cursor=request.query_params.get("cursor") or None,
                full=True,
            )
        except InvalidCursor as error:  # bad input, not a domain error
            raise ApiError(
                status_code=400, code="invalid_field", message=f"cursor: {error}", param="cursor"
            ) from None
        return Response(
            {
                "data": ReviewerApprovalOutput(page.rows, many=True).data,
                "next_cursor": page.next_cursor,
            }
        )


class ReviewerRequestDetailApi(ReviewerApi):
    @extend_schema(operation_id="reviewer_get_request", responses={200: ReviewerApprovalOutput})
    def get(self, request: Request, code: str) -> Response:
        return Response(ReviewerApprovalOutput(self.get_approval(request, code)).data)


class ReviewerApproveApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_approve_request",
        request=ApproveInput,
        responses={200: ReviewerApprovalOutput},
        description="Approve, or approve with changed `arguments`. Where the request needs "
        "several approvals, it stays pending (see `approved_by`) until enough reviewers agree. "
        "A `high` or `critical` impact request needs `confirm` set to its `tool`: without it "
        "(or naming another tool) 400 `confirmation_required` with `param` `confirm`, nothing "
        "recorded. "
        "A reviewer who operates the submitting agent gets 403 `own_agent` (deny still works). "
        "Changed arguments are judged by the policy as a new request with them: 400 "
        "`policy_denies` naming the rule if it denies them; if it routes them to another team "
        "or more approvals, they are not approved but proposed: the answer carries `proposal` "
        "(`team`, `required_approvals`, `reason`) and the request moves to that team.",
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = ApproveInput(data=request.data)
        payload.is_valid(raise_exception=True)
        outcome = check_approval_request_approve(
            approval=approval,
            reviewer=request.user,  # type: ignore[arg-type]
            note=payload.validated_data.get("note", ""),
            arguments=payload.validated_data.get("arguments"),
            confirmed=payload.validated_data.get("confirm") or None,
        )
        answer = _fresh(request, code)
        if outcome.proposal is not None:
            answer["proposal"] = {
                "team": outcome.approval.team.name if outcome.approval.team else None,
                "required_approvals": outcome.required,
                "votes": outcome.votes,
                "reason": outcome.proposal.verdict.reason,
            }
        return Response(answer)


class ReviewerAnswerApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_answer_request",
        request=AnswerInput,
        responses={200: ReviewerApprovalOutput},
        description="Answer a question (`kind` `question`). The answer is validated against "
        "the question's `answer_schema`: 400 naming the field (`$.field: ...`), nothing stored. "
        "To decline to answer, deny with a reason. A reviewer who operates the asking agent "
        "gets 403 `own_agent`.",
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = AnswerInput(data=request.data)
        payload.is_valid(raise_exception=True)
        check_approval_request_answer(
            approval=approval,
            reviewer=request.user,  # type: ignore[arg-type]
            answer=payload.validated_data["answer"],
            note=payload.validated_data.get("note", ""),
        )
        return Response(_fresh(request, code))


class ReviewerDenyApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_deny_request",
        request=DenyInput,
        responses={200: ReviewerApprovalOutput},
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = DenyInput(data=request.data)
        payload.is_valid(raise_exception=True)
        check_approval_request_deny(
            approval=approval,
            reviewer=request.user,  # type: ignore[arg-type]
            reason=payload.validated_data["reason"],
        )
        return Response(_fresh(request, code))


class ReviewerCommentApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_comment_request",
        request=CommentInput,
        responses={201: ReviewerApprovalOutput},
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = CommentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        check_approval_request_comment(
            approval=approval,
            reviewer=request.user,  # type: ignore[arg-type]
            note=payload.validated_data["note"],
        )
        return Response(_fresh(request, code), status=status.HTTP_201_CREATED)


class ReviewerEscalateApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_escalate_request",
        request=EscalateInput,
        responses={200: ReviewerApprovalOutput},
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = EscalateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        approval = check_approval_request_escalate(
            approval=approval,
            reviewer=request.user,  # type: ignore[arg-type]
            team=payload.validated_data["team"],
            note=payload.validated_data["note"],
        )
        # The caller may no longer see it (another team): say where it went, nothing more.
        return Response({"id": str(approval.code), "team": approval.team.name})  # type: ignore[union-attr]


class ReviewerEscalateNextStepApi(ReviewerApi):
    @extend_schema(
        operation_id="reviewer_escalate_request_next_step",
        request=EscalateNextStepInput,
        responses={200: EscalateNextStepOutput},
        description="Fire the next step of the request's escalation chain now. 409 "
        "`escalation_unavailable` when no chain applies or every step has fired.",
    )
    def post(self, request: Request, code: str) -> Response:
        approval = self.get_approval(request, code)
        payload = EscalateNextStepInput(data=request.data)
        payload.is_valid(raise_exception=True)
        firing = approval_request_escalate_next_step(
            approval=approval,
            actor=request.user,  # type: ignore[arg-type]
            note=payload.validated_data.get("note", ""),
        )
        approval.refresh_from_db(fields=["team"])
        # A step may hand the request to a team the caller is not in: say where, nothing more.
        output = {
            "id": approval.code,
            "step": firing.step.position,
            "team": approval.team.name if approval.team else None,
        }
        return Response(EscalateNextStepOutput(output).data)


class ReviewerRunExportApi(ReviewerApi):
    """A run's record for replay (approvals/run_export.py), for a reviewer who sees the run
    (reviewer_may_see_run: one of its requests is theirs), holding only the requests they see;
    any other run answers 404, like one that does not exist."""

    @extend_schema(
        operation_id="reviewer_export_run",
        responses={(200, CONTENT_TYPE): str},
    )
    def get(self, request: Request, code: str) -> Any:
        run = Run.objects.select_related("agent").filter(code=code).first()
        if run is None or not reviewer_may_see_run(user=request.user, run=run):
            raise RunNotVisible()
        stream = run_export_start(
            run=run,
            actor=request.user,
            via="reviewer_api",
            approvals=approvals_visible_to(user=request.user),
        )
        return streamed_download(
            stream=stream, content_type=CONTENT_TYPE, filename=run_export_filename(run)
        )
