"""Read paths for HumanLayer calls: the call_id the SDK chose is the request's idempotency key."""

from agents.models import Agent
from approvals.models import ApprovalRequest

FUNCTION_CALL = "function_call"
HUMAN_CONTACT = "human_contact"


def humanlayer_idempotency_key(*, kind: str, call_id: str) -> str:
    # Namespaced so a HumanLayer call_id never collides with a native client's own key.
    return f"humanlayer:{kind}:{call_id}"


def humanlayer_call_get(*, agent: Agent, kind: str, call_id: str) -> ApprovalRequest | None:
    """An agent sees only its own calls; anything else is indistinguishable from absent."""
    return (
        ApprovalRequest.objects.select_related("decision")
        .filter(agent=agent, idempotency_key=humanlayer_idempotency_key(kind=kind, call_id=call_id))
        .first()
    )


def humanlayer_call_without_arguments(approval: ApprovalRequest) -> bool:
    """A HumanLayer function call that arrived with empty arguments. HumanLayer's client sends
    only the keyword arguments, so a positional call is gated with none of its values."""
    prefix = humanlayer_idempotency_key(kind=FUNCTION_CALL, call_id="")
    return approval.idempotency_key.startswith(prefix) and not approval.arguments
