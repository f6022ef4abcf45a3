"""The second step of approving a high- or critical-impact request: a confirmation naming its tool.

Every way a reviewer approves passes what that reviewer confirmed: the decision page its "Yes,
approve <tool>" step, the reviewer API the body's `confirm`, and Slack's buttons and bulk approve
nothing, for they ask for nothing. approvals.reviews.check_approval_request_approve checks it
before any vote or decision, so the rule is the same on every surface, and a surface that does
not ask is refused rather than let through. Denying never needs it: nothing runs.

On the decision page the reviewer types what approval_confirmation_asked says: the tool's name as
the page shows it, or, for a name that shows as nothing (only whitespace, or empty), which no one
can type, the word CONFIRMATION_WORD. approval_confirmation_typed turns what was typed into the
`confirmed` this check reads; templates/approvals/_confirm_typed.html and static/js/decision.js
compare the same text the same way.
"""

import json
from dataclasses import dataclass

from approvals.agent_text import agent_text_one_line
from approvals.exceptions import ReviewRejected
from approvals.models import ApprovalRequest, Status

# ReviewRejected code: an approval without the confirmation its impact needs, or naming another
# tool. 400: the caller can send it again, confirmed.
CONFIRMATION_REQUIRED = "confirmation_required"
# The input that carries it, as the reviewer API names it (the page's form field is `confirmed`).
CONFIRMATION_PARAM = "confirm"
# What a reviewer types on the decision page to confirm a tool whose name shows as nothing: still
# a deliberate second step (no stray Enter sends it), and a word no blank name can be.
CONFIRMATION_WORD = "approve"


@dataclass(frozen=True)
class ConfirmationAsked:
    """What the decision page asks a reviewer to type to confirm approving a request."""

    # Typed as it is, letter case included; surrounding whitespace does not count.
    text: str
    # True: `text` is the tool's name as shown; False: the name shows as nothing, and `text` is
    # CONFIRMATION_WORD.
    names_tool: bool
    # The agent's name has whitespace the page does not show as sent (around it, or several in a
    # row): the step says so beside the name to type.
    whitespace_hidden: bool = False


def approval_confirmation_asked(approval: ApprovalRequest) -> ConfirmationAsked:
    """What confirms `approval` on the decision page: the tool's name as the page shows it
    (agent_text_one_line: invisible and direction-changing characters as ⟨U+XXXX⟩, so the name
    typed is the name read; runs of whitespace as one space, none around it), or
    CONFIRMATION_WORD when that leaves nothing to type."""
    shown = agent_text_one_line(approval.tool)
    if not shown:
        return ConfirmationAsked(text=CONFIRMATION_WORD, names_tool=False)
    hidden = " ".join(approval.tool.split()) != approval.tool
    return ConfirmationAsked(text=shown, names_tool=True, whitespace_hidden=hidden)


def approval_confirmation_typed(*, approval: ApprovalRequest, typed: str) -> str | None:
    """What a text typed (or sent) on the decision page confirms, for approval_confirmation_check.

    Surrounding whitespace does not count; everything else does, letter case included. Only what
    approval_confirmation_asked asks for, the name as the page shows it, confirms the tool: the
    reviewer confirms what they read. The raw name does not where it differs from that (its
    invisible or direction-changing characters, its runs of whitespace): no one reads it on the
    page, and the script (static/js/decision.js) keeps the button disabled for it too. Anything
    else is passed on, which the check refuses; nothing typed is None, no confirmation. A name
    that shows as nothing is confirmed by CONFIRMATION_WORD only: typing its whitespace is no
    deliberate step.

    Whitespace is what str.strip() removes (str.isspace: U+001C-U+001F and U+0085 among it,
    U+FEFF not). static/js/decision.js trims exactly that set, so its button is enabled for
    exactly the texts this function accepts as what the page asks.
    """
    typed = typed.strip()
    if not typed:
        return None
    if typed == approval_confirmation_asked(approval).text:
        return approval.tool
    if typed == approval.tool:
        # The raw name, which the page does not show: passed on as the page would show it, which
        # differs from the tool's name, so the check refuses it.
        return agent_text_one_line(typed)
    return typed


def approval_confirmation_check(*, approval: ApprovalRequest, confirmed: str | None) -> None:
    """Refuse (ReviewRejected, nothing recorded) an approval its reviewer did not confirm.

    `confirmed` is the tool name the reviewer confirmed, None (or "") when they confirmed
    nothing. It is needed where ApprovalRequest.needs_confirmation; when given it must name this
    request's tool at any impact, exactly: naming another, the reviewer confirmed some other call.
    (A tool named "" is confirmed by "", which approval_confirmation_typed sends for the word.)
    """
    if approval.status != Status.PENDING:
        return  # decided meanwhile: the transition names the outcome that stands (409)
    if confirmed is not None and confirmed == approval.tool:
        return
    tool = json.dumps(approval.tool)
    if confirmed:
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
