"""The HumanLayer 0.7 wire format: what its SDK sends, and the FunctionCall/HumanContact it reads.

Input is lenient about fields this console does not use (the SDK dumps every model field, and
newer SDKs add more), strict about the ones it does. Output is fail-closed: HumanLayer clients
cannot run changed arguments and do not check an approval's validity window, so an approval with
changes, or one read after it lapsed, is reported to them as not approved, with the reason.
"""

import json
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from agents.api.native import JSONObjectField
from agents.humanlayer.services import CONTACT_TOOL
from approvals.models import ApprovalRequest, Status
from console.api_fields import BoundedJSONField

_NOT_APPROVED_COMMENT: dict[str, str] = {
    Status.EXPIRED: "No decision before the deadline.",
    Status.CANCELLED: "The request was cancelled before anyone decided.",
}


class FunctionCallSpecInput(serializers.Serializer):
    fn = serializers.CharField(max_length=200)
    kwargs = JSONObjectField()
    channel = BoundedJSONField(required=False, allow_null=True)
    reject_options = BoundedJSONField(required=False, allow_null=True)
    state = BoundedJSONField(required=False, allow_null=True)


class HumanContactSpecInput(serializers.Serializer):
    msg = serializers.CharField(max_length=20_000)
    subject = serializers.CharField(max_length=500, required=False, allow_null=True)
    channel = BoundedJSONField(required=False, allow_null=True)
    response_options = BoundedJSONField(required=False, allow_null=True)
    state = BoundedJSONField(required=False, allow_null=True)


class FunctionCallInput(serializers.Serializer):
    run_id = serializers.CharField(max_length=200)
    call_id = serializers.CharField(max_length=200)
    spec = FunctionCallSpecInput()


class HumanContactInput(serializers.Serializer):
    run_id = serializers.CharField(max_length=200)
    call_id = serializers.CharField(max_length=200)
    spec = HumanContactSpecInput()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _humanlayer_context(approval: ApprovalRequest) -> dict[str, Any]:
    context = approval.context.get("humanlayer") if isinstance(approval.context, dict) else None
    return context if isinstance(context, dict) else {}


def function_call_output(approval: ApprovalRequest) -> dict[str, Any]:
    hl = _humanlayer_context(approval)
    return {
        "run_id": hl.get("run_id", ""),
        "call_id": hl.get("call_id", ""),
        "spec": {
            "fn": approval.tool,
            "kwargs": approval.arguments,
            "channel": hl.get("channel"),
            "reject_options": hl.get("reject_options"),
            "state": hl.get("state"),
        },
        "status": _function_call_status(approval),
    }


def human_contact_output(approval: ApprovalRequest) -> dict[str, Any]:
    hl = _humanlayer_context(approval)
    assert approval.tool == CONTACT_TOOL
    return {
        "run_id": hl.get("run_id", ""),
        "call_id": hl.get("call_id", ""),
        "spec": {
            "msg": approval.arguments.get("msg", ""),
            "subject": approval.arguments.get("subject"),
            "channel": hl.get("channel"),
            "response_options": hl.get("response_options"),
            "state": hl.get("state"),
        },
        "status": _human_contact_status(approval),
    }


def _function_call_status(
    approval: ApprovalRequest, *, now: datetime | None = None
) -> dict[str, Any]:
    """HumanLayer's FunctionCallStatus for an approval request."""
    status: dict[str, Any] = {
        "requested_at": _iso(approval.created_at),
        "responded_at": None,
        "approved": None,
        "comment": None,
        "reject_option_name": None,
        "slack_message_ts": None,
    }
    if approval.status == Status.PENDING:
        return status
    decision = approval.decision
    status["responded_at"] = _iso(decision.decided_at)
    note = decision.note
    if approval.status == Status.APPROVED:
        now = now or timezone.now()
        if decision.approved_arguments is not None:
            changed = json.dumps(decision.approved_arguments, sort_keys=True)
            status["approved"] = False
            status["comment"] = (
                f"A reviewer approved this call only with changed arguments {changed}. This "
                "client cannot apply changes, so the call must not run; resubmit with them."
                + (f" Reviewer's note: {note}" if note else "")
            )
        elif decision.expires_at is not None and decision.expires_at <= now:
            status["approved"] = False
            status["comment"] = "The approval lapsed before it was collected; ask again."
        else:
            status["approved"] = True
            status["comment"] = note or None
        return status
    status["approved"] = False
    status["comment"] = note or _NOT_APPROVED_COMMENT.get(approval.status, approval.status)
    return status


def _human_contact_status(approval: ApprovalRequest) -> dict[str, Any]:
    """HumanLayer's HumanContactStatus: the reviewer's note is the human's response."""
    status: dict[str, Any] = {
        "requested_at": _iso(approval.created_at),
        "responded_at": None,
        "response": None,
        "response_option_name": None,
    }
    if approval.status == Status.PENDING:
        return status
    decision = approval.decision
    status["responded_at"] = _iso(decision.decided_at)
    status["response"] = decision.note or _NOT_APPROVED_COMMENT.get(approval.status, "")
    return status
