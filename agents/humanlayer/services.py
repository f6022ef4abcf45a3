"""HumanLayer calls in, approval requests through the one state machine, HumanLayer status out.

Nothing here changes an approval's state except through approvals.services. How decisions are
reported back is in serializers.py.
"""

from typing import Any

from django.conf import settings

from agents.humanlayer.selectors import (
    FUNCTION_CALL,
    HUMAN_CONTACT,
    humanlayer_call_get,
    humanlayer_idempotency_key,
)
from agents.models import Agent
from approvals.exceptions import IdempotencyConflict
from approvals.models import ApprovalRequest
from approvals.services import (
    Submission,
    approval_request_create,
    approval_request_expire_if_overdue,
)

CONTACT_TOOL = "contact_human"


def _submission(
    *, tool: str, arguments: dict[str, Any], summary: str, context: dict[str, Any]
) -> Submission:
    # HumanLayer 0.7 has no review window of its own: the console's default applies.
    return Submission(
        tool=tool,
        arguments=arguments,
        timeout=f"{settings.APPROVAL_DEFAULT_TIMEOUT_SECONDS}s",
        summary=summary,
        context=context,
    )


def _create_once(**arguments: Any) -> tuple[ApprovalRequest, bool]:
    try:
        return approval_request_create(**arguments)
    except IdempotencyConflict:
        # The idempotency key is the call_id here: name it as HumanLayer clients know it.
        raise IdempotencyConflict(
            "A call with this call_id exists with a different spec.", param="call_id"
        ) from None


def humanlayer_function_call_create(
    *, agent: Agent, run_id: str, call_id: str, spec: dict[str, Any]
) -> tuple[ApprovalRequest, bool]:
    """Ask reviewers to approve `spec.fn(**spec.kwargs)`. Replays of the same call_id with the
    same spec return the original request."""
    context = {
        "humanlayer": {
            "run_id": run_id,
            "call_id": call_id,
            "channel": spec.get("channel"),
            "reject_options": spec.get("reject_options"),
            "state": spec.get("state"),
        }
    }
    return _create_once(
        agent=agent,
        idempotency_key=humanlayer_idempotency_key(kind=FUNCTION_CALL, call_id=call_id),
        submission=_submission(
            tool=spec["fn"], arguments=spec["kwargs"], summary="", context=context
        ),
    )


def humanlayer_human_contact_create(
    *, agent: Agent, run_id: str, call_id: str, spec: dict[str, Any]
) -> tuple[ApprovalRequest, bool]:
    """Ask reviewers a question. They answer with the note of their decision."""
    context = {
        "humanlayer": {
            "run_id": run_id,
            "call_id": call_id,
            "channel": spec.get("channel"),
            "response_options": spec.get("response_options"),
            "state": spec.get("state"),
        }
    }
    return _create_once(
        agent=agent,
        idempotency_key=humanlayer_idempotency_key(kind=HUMAN_CONTACT, call_id=call_id),
        submission=_submission(
            tool=CONTACT_TOOL,
            arguments={"msg": spec["msg"], "subject": spec.get("subject")},
            summary=spec.get("subject") or "",
            context=context,
        ),
    )


def humanlayer_call_read(*, agent: Agent, kind: str, call_id: str) -> ApprovalRequest | None:
    approval = humanlayer_call_get(agent=agent, kind=kind, call_id=call_id)
    if approval is None:
        return None
    return approval_request_expire_if_overdue(approval=approval)
