"""Slack through the official slack-sdk: a Block Kit message per reviewer, updated in place with
the outcome.

Agent-supplied text goes into `plain_text` objects only: in mrkdwn an agent could write
`<!channel>` or a disguised link. Its invisible and bidi characters are shown as escapes, and it
sits under a label saying it is the agent's. The SDK's own retry handlers are off: the outbox owns
retries, so a 429 or an outage becomes a RetryableError and the row is tried again later, once.

Approve only for what the reviewer can see: a text object holds at most 3,000 characters, and
when the exact call (the tool and its whole arguments) does not fit in one, the message offers
Deny and "Open in console" only; slack_interactions refuses an Approve click on such a request
too (an older message, or a forged payload).

No Approve button either for a high- or critical-impact request: approving one needs a
confirmation naming the tool (approvals.services.confirmation), and a button cannot carry it.
Slack's own `confirm` dialog on a button would not do: Slack's client draws it, and the click
that reaches us afterwards is the same as one without it, so the server could never tell that
anyone confirmed anything, and it asks "are you sure?", not for the tool. Such a message offers
Deny and "Open in console to approve", the decision page with its confirm step.
"""

import logging
from typing import Any
from urllib.error import URLError

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from approvals.agent_text import (
    agent_text_cut,
    agent_text_in_quotes,
    agent_text_visible,
    agent_tool_quoted,
)
from approvals.models import REASON_OUTCOME_FAILED, ApprovalRequest, Channel, Notification
from approvals.notifiers.base import Notifier, PermanentError, PostedMessage, RetryableError
from approvals.notifiers.email import decision_url
from approvals.notifiers.slack_post_once import slack_post_once
from approvals.presentation import arguments_exact_text
from approvals.reasons import reason_from_stored
from console.outbox import retry_after_seconds

logger = logging.getLogger(__name__)

ACTION_APPROVE = "approval_approve"
ACTION_DENY = "approval_deny"
ACTION_OPEN = "approval_open"

# Slack's answers that no retry can change.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "account_inactive",
        "cant_update_message",
        "channel_not_found",
        "invalid_auth",
        "invalid_blocks",
        "is_archived",
        "message_not_found",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "not_authed",
        "not_in_channel",
        "token_revoked",
        "user_not_found",
    }
)
_TEXT_LIMIT = 2900  # Slack refuses text objects over 3000 characters.
_HEADER_LIMIT = 150  # and header text over 150.


def slack_client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=10,
        retry_handlers=[],
    )


def _plain(text: str) -> dict[str, Any]:
    text = text or " "
    if len(text) > _TEXT_LIMIT:
        text = text[: _TEXT_LIMIT - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": False}


def slack_exact_call_text(approval: ApprovalRequest) -> str | None:
    """The tool and its whole arguments as one Slack text object, or None when they do not fit
    whole: then Slack must not offer Approve (the reviewer would approve what they cannot see)."""
    text = (
        f"Exact call: {agent_tool_quoted(approval.tool)}\n"
        f"Arguments:\n{agent_text_visible(arguments_exact_text(approval))}"
    )
    return text if len(text) <= _TEXT_LIMIT else None


def slack_may_approve(approval: ApprovalRequest) -> bool:
    """Whether a Slack message can show this request's exact call whole, so Approve may be
    offered there and an Approve click from Slack may be recorded. Never for a question: it is
    answered in the console's form, not approved. Never for a request whose approval needs a
    confirmation naming the tool: a button cannot carry it (see the module's docstring)."""
    return (
        not approval.is_question
        and not approval.needs_confirmation
        and slack_exact_call_text(approval) is not None
    )


def _confirm_in_console_text(approval: ApprovalRequest) -> str:
    return (
        f"{approval.get_impact_display()} impact: approve it in the console, where you confirm "
        "it by the tool's name. Deny works here."
    )


QUESTION_HEADER = "Question: an answer needed"
QUESTION_NOTE = (
    "A question, not a tool call: nothing runs when it is answered. Answer it in the console, "
    "in the form its answer schema asks for, or decline it."
)


def slack_headline(approval: ApprovalRequest) -> str:
    """The message's first line (its header, and the notification's fallback text). The tool
    is quoted as a name: a tool named "Approved" must not read as the console's verdict."""
    if approval.is_question:
        return QUESTION_HEADER
    return f"Approval needed: {agent_tool_quoted(approval.tool)}"


def _agent_said(label: str, text: str) -> str:
    return f"{label} (the agent's claim, not verified):\n{agent_text_visible(text)}"


# long: one Block Kit message written as the literal Slack renders, section by section
def approval_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """The message for one request: what, how sure, how bad, until when, and the buttons."""
    confidence = "not stated" if approval.confidence is None else f"{approval.confidence:.2f}"
    exact_call = slack_exact_call_text(approval)
    header = agent_text_cut(slack_headline(approval), _HEADER_LIMIT)
    said = "Question" if approval.is_question else "Summary"
    summary = _agent_said(said, approval.summary) if approval.summary else "(no summary given)"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(header)},
        {"type": "section", "text": _plain(summary)},
        {
            "type": "section",
            "fields": [
                _plain(f"Confidence: {confidence}"),
                _plain(f"Impact: {approval.get_impact_display()}"),
                _plain(f"Agent: {agent_text_in_quotes(approval.agent.name)}"),
                _plain(f"Deadline: {approval.deadline_at:%Y-%m-%d %H:%M:%S} UTC"),
            ],
        },
    ]
    if approval.hold_reason:
        # The console's words; the agent's values in it are quoted JSON literals.
        reason = reason_from_stored(approval.hold_reason, approval.hold_reason_parts)
        paused = _plain(f"Paused because: {reason}")
        blocks.append({"type": "section", "text": paused})
    if approval.is_question:
        blocks.append({"type": "section", "text": _plain(QUESTION_NOTE)})
    elif exact_call is not None:
        blocks.append({"type": "section", "text": _plain(exact_call)})
    else:
        blocks.append(
            {
                "type": "section",
                "text": _plain(
                    "The exact arguments are too long to show here whole, so this message "
                    "cannot approve: open the request in the console to see them and decide."
                ),
            }
        )
    confirm_in_console = approval.needs_confirmation and not approval.is_question
    if confirm_in_console and not approval.is_terminal:
        blocks.append({"type": "section", "text": _plain(_confirm_in_console_text(approval))})
    open_text = "Open in console"
    if approval.is_question:
        open_text = "Answer in console"
    elif confirm_in_console and not approval.is_terminal:
        open_text = "Open in console to approve"
    open_button = {
        "type": "button",
        "action_id": ACTION_OPEN,
        "text": _plain(open_text),
        "url": decision_url(approval.code),
    }
    if approval.is_terminal:
        blocks.append({"type": "context", "elements": [_plain(outcome_text(approval))]})
        blocks.append({"type": "actions", "elements": [open_button]})
    else:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"approval:{approval.code}",
                "elements": [
                    *(
                        [
                            {
                                "type": "button",
                                "action_id": ACTION_APPROVE,
                                "style": "primary",
                                "text": _plain("Approve"),
                                "value": str(approval.code),
                            }
                        ]
                        if slack_may_approve(approval)
                        else []
                    ),
                    # Denying what one cannot see whole is safe: nothing runs. A question is
                    # declined the same way: the agent gets no answer.
                    {
                        "type": "button",
                        "action_id": ACTION_DENY,
                        "style": "danger",
                        "text": _plain("Decline" if approval.is_question else "Deny"),
                        "value": str(approval.code),
                    },
                    open_button,
                ],
            }
        )
    return blocks


def outcome_text(approval: ApprovalRequest) -> str:
    return f"{_outcome_words(approval)}."


def _outcome_words(approval: ApprovalRequest) -> str:
    decision = getattr(approval, "decision", None)
    who = ""
    if decision is not None and decision.reviewer is not None:
        who = f" by {decision.reviewer.get_username()}"
    return f"{approval.status_label}{who}"


def slack_fallback_text(approval: ApprovalRequest, *, failure_notice: bool) -> str:
    """The message's plain text: what a phone's notification and a screen reader say. The
    console's words first, the tool quoted as a name (agent_tool_quoted)."""
    tool = agent_tool_quoted(approval.tool)
    if failure_notice:
        return f"Failed after your approval: {tool}"
    if approval.is_terminal:
        return f"{_outcome_words(approval)}: {tool}"
    return slack_headline(approval)


def outcome_failed_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """ "Something you approved failed": the tool, who approved it when, and the agent's error
    (plain text, under a label saying it is the agent's). No buttons but Open: nothing to decide."""
    outcome = approval.outcome
    decision = approval.decision
    header = agent_text_cut(
        f"Failed after approval: {agent_tool_quoted(approval.tool)}", _HEADER_LIMIT
    )
    approved_by = decision.reviewer.get_username() if decision.reviewer is not None else "policy"
    took = f" after {outcome.duration_ms} ms" if outcome.duration_ms is not None else ""
    return [
        {"type": "header", "text": _plain(header)},
        {
            "type": "section",
            "fields": [
                _plain(f"Agent: {agent_text_in_quotes(approval.agent.name)}"),
                _plain(f"Approved: {decision.decided_at:%Y-%m-%d %H:%M} UTC by {approved_by}"),
                _plain(f"Failed: reported {outcome.reported_at:%Y-%m-%d %H:%M} UTC{took}"),
            ],
        },
        {"type": "section", "text": _plain(_agent_said("Error", outcome.error or "(none given)"))},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_OPEN,
                    "text": _plain("Open in console"),
                    "url": decision_url(approval.code),
                }
            ],
        },
    ]


class SlackNotifier(Notifier):
    channel = Channel.SLACK

    def notify(self, notification: Notification) -> PostedMessage | None:
        approval = notification.approval
        failure_notice = notification.reason == REASON_OUTCOME_FAILED
        blocks = outcome_failed_blocks(approval) if failure_notice else approval_blocks(approval)
        fallback = slack_fallback_text(approval, failure_notice=failure_notice)
        client = slack_client()
        try:
            if notification.slack_message is not None:
                message = notification.slack_message
                client.chat_update(
                    channel=message.channel, ts=message.ts, text=fallback, blocks=blocks
                )
                return None
            profile = getattr(notification.recipient, "notification_preference", None)
            if profile is None or not profile.slack_user_id:
                raise PermanentError("The reviewer has no Slack user id.")
            # Posting to a member id opens (or reuses) the app's direct message with them. Once
            # only: a retry adopts the message an earlier try posted (slack_post_once).
            posted = slack_post_once(
                client,
                notification,
                member_id=profile.slack_user_id,
                text=fallback,
                blocks=blocks,
            )
        except SlackApiError as error:
            raise _classify(error) from error
        except (URLError, OSError) as error:
            raise RetryableError(f"Slack unreachable: {error}") from error
        if failure_notice:
            # Not the request's message: a decision's update must never overwrite this one.
            return None
        return posted


def _classify(error: SlackApiError) -> Exception:
    response = error.response
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        delay = retry_after_seconds(retry_after)
        return RetryableError("Slack rate limit", retry_after=delay)
    code = ""
    if isinstance(response.data, dict):
        code = str(response.data.get("error", ""))
    if code in PERMANENT_SLACK_ERRORS:
        return PermanentError(f"Slack refused: {code}")
    return RetryableError(f"Slack error {response.status_code}: {code or 'unknown'}")


def slack_reply_ephemeral(*, response_url: str, text: str) -> None:
    """Tell the person who clicked why nothing happened. Best effort: Slack shows no error."""
    from slack_sdk.webhook import WebhookClient

    try:
        WebhookClient(response_url, timeout=5).send(
            text=text, response_type="ephemeral", replace_original=False
        )
    except Exception:
        logger.warning("could not answer a Slack interaction at its response_url")
