"""Decisions from Slack's Approve / Deny buttons.

Everything Slack sends is checked before it is believed: the signature (HMAC of the body with our
signing secret) and its timestamp (older than five minutes is a replay). The Slack member is
mapped to a console reviewer through NotificationPreference.slack_user_id, the console's own
access rule applies, and the decision goes through the same services as the decision page.
The message itself is updated through the outbox, by the resolved-transition hook: a decision
made here or anywhere else updates every Slack message about the request the same way.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from slack_sdk.signature import SignatureVerifier

from approvals.access import reviewer_may_see
from approvals.exceptions import ApprovalNotVisible, TransitionConflict
from approvals.models import ApprovalRequest, NotificationPreference
from approvals.notifiers.slack import ACTION_APPROVE, ACTION_DENY, slack_may_approve
from approvals.reviews import check_approval_request_approve, check_approval_request_deny
from console.errors import DomainError

logger = logging.getLogger(__name__)


class SlackRequestRefused(Exception):
    """Not from Slack, or not now: answer 401 and do nothing."""


@dataclass(frozen=True)
class InteractionOutcome:
    decided: bool
    message: str
    response_url: str = ""


def slack_request_verify(*, body: bytes, headers: Mapping[str, str]) -> None:
    if not settings.SLACK_SIGNING_SECRET:
        raise SlackRequestRefused("Slack is not configured.")
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    try:
        valid = verifier.is_valid_request(body, headers)
    except ValueError:  # a timestamp that is not a number
        valid = False
    if not valid:
        raise SlackRequestRefused("Bad or stale Slack signature.")


def slack_interaction_handle(*, body: bytes, headers: Mapping[str, str]) -> InteractionOutcome:
    """Verify, map the Slack user, check access, decide. Raises SlackRequestRefused if forged."""
    slack_request_verify(body=body, headers=headers)
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        action = payload["actions"][0]
        action_id = str(action["action_id"])
        code = str(action.get("value", ""))
        slack_user_id = str(payload["user"]["id"])
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError):
        return InteractionOutcome(decided=False, message="Not an interaction the console knows.")
    response_url = str(payload.get("response_url", ""))

    def refuse(message: str) -> InteractionOutcome:
        return InteractionOutcome(decided=False, message=message, response_url=response_url)

    if action_id not in (ACTION_APPROVE, ACTION_DENY):
        return refuse("")  # "Open" is a link; Slack still tells us it was clicked
    preference = (
        NotificationPreference.objects.select_related("user")
        .filter(slack_user_id=slack_user_id)
        .first()
    )
    if preference is None or not preference.user.is_active:
        return refuse("Your Slack account is not linked to a console reviewer.")
    reviewer = preference.user
    try:
        approval = ApprovalRequest.objects.get(code=code)
    except (ApprovalRequest.DoesNotExist, ValueError):
        return refuse("No such approval request.")
    if not reviewer_may_see(user=reviewer, team_id=approval.team_id):
        return refuse("You may not decide this request: it is routed to another team.")
    if action_id == ACTION_APPROVE and (why := _not_approvable_from_slack(approval)):
        return refuse(why)
    # The same services as the console: quorum, one vote per reviewer, one outcome.
    message = "Recorded."
    try:
        if action_id == ACTION_APPROVE:
            outcome = check_approval_request_approve(
                approval=approval,
                reviewer=reviewer,
                note="Approved from Slack.",
                confirmed=None,  # a button confirms nothing: high impact is refused above
            )
            if not outcome.decided:
                message = f"Your approval is recorded: {outcome.votes} of {outcome.required}."
        else:
            check_approval_request_deny(
                approval=approval,
                reviewer=reviewer,
                reason=(
                    f"{'Declined' if approval.is_question else 'Denied'} from Slack by "
                    f"{reviewer.get_username()}."
                ),
            )
    except DomainError as error:
        return refuse(slack_error_message(error))
    logger.info("slack %s by %s on %s", action_id, reviewer.get_username(), approval.code)
    return InteractionOutcome(decided=True, message=message, response_url=response_url)


def _not_approvable_from_slack(approval: ApprovalRequest) -> str:
    """Why Slack may not approve this request ("" when it may), whatever button was clicked
    (an old message's, a forged one)."""
    if approval.is_question:
        return "Not recorded: this is a question. Answer it in the console."
    if approval.needs_confirmation:
        # The message offers no Approve for it; this click is an older message's, or forged.
        return (
            f"Not recorded: this request has {approval.get_impact_display().lower()} impact, "
            "so approving it needs a confirmation naming the tool. Open it in the console to "
            "approve it there."
        )
    if not slack_may_approve(approval):
        # Slack could not show the exact call whole: nobody approves what they could not see.
        return (
            "Not recorded: the exact arguments are too long to show in Slack. Open the request "
            "in the console to see them whole and decide there."
        )
    return ""


def slack_error_message(error: DomainError) -> str:
    """Slack's one mapping of domain errors: what the person who clicked is told, privately."""
    if isinstance(error, TransitionConflict):
        return f"Not recorded: this request is already {error.current_status}."
    if isinstance(error, ApprovalNotVisible):  # escalated away while the click was on its way
        return "You may not decide this request: it is routed to another team."
    return f"Not recorded: {error.message}"
