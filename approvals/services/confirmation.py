"""The second step of approving a high- or critical-impact request: a confirmation naming its tool.

Every way a reviewer approves passes what that reviewer confirmed: the decision page its "Yes,
approve <tool>" step, the reviewer API the body's `confirm`, and Slack's buttons and bulk approve
nothing, for they ask for nothing. approvals.reviews.check_approval_request_approve checks it
before any vote or decision, so the rule is the same on every surface, and a surface that does
not ask is refused rather than let through. Denying never needs it: nothing runs.
"""

import json

from approvals.exceptions import ReviewRejected
from approvals.models import ApprovalRequest, Status

# ReviewRejected code: an approval without the confirmation its impact needs, or naming another
# tool. 400: the caller can send it again, confirmed.
CONFIRMATION_REQUIRED = "confirmation_required"
# The input that carries it, as the reviewer API names it (the page's form field is `confirmed`).
CONFIRMATION_PARAM = "confirm"


def approval_confirmation_check(*, approval: ApprovalRequest, confirmed: str | None) -> None:
    """Refuse (ReviewRejected, nothing recorded) an approval its reviewer did not confirm.

    `confirmed` is the tool name the reviewer confirmed, None (or "") when they confirmed
    nothing. It is needed where ApprovalRequest.needs_confirmation; when given it must name this
    request's tool at any impact, exactly: naming another, the reviewer confirmed some other call.
    """
    if approval.status != Status.PENDING:
        return  # decided meanwhile: the transition names the outcome that stands (409)
    tool = json.dumps(approval.tool)
    if confirmed and confirmed != approval.tool:
        raise ReviewRejected(
            f"{CONFIRMATION_PARAM}: names {json.dumps(confirmed)}, but this request runs "
            f"{tool}. Nothing was recorded.",
            code=CONFIRMATION_REQUIRED,
            param=CONFIRMATION_PARAM,
        )
    if not confirmed and approval.needs_confirmation:
        raise ReviewRejected(
            f"{CONFIRMATION_PARAM}: this request has {approval.get_impact_display().lower()} "
            f"impact, so approving it needs a confirmation naming the tool the agent will run: "
            f"set {CONFIRMATION_PARAM} to {tool}. Nothing was recorded.",
            code=CONFIRMATION_REQUIRED,
            param=CONFIRMATION_PARAM,
        )
