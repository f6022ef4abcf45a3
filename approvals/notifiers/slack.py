"""Slack through the official slack-sdk: a Block Kit message per reviewer, updated in place with
the outcome.

Agent-supplied text goes into `plain_text` objects only: in mrkdwn an agent could write
`<!channel>` or a disguised link. The SDK's own retry handlers are off: the outbox owns retries,
so a 429 or an outage becomes a RetryableError and the row is tried again later, once.
"""

import json
import logging
from typing import Any
from urllib.error import URLError

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from approvals.models import ApprovalRequest, Channel, Notification
from approvals.notifiers.base import Notifier, PermanentError, PostedMessage, RetryableError
from approvals.notifiers.email import decision_url

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


def approval_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """The message for one request: what, how sure, how bad, until when, and the buttons."""
    confidence = "not stated" if approval.confidence is None else f"{approval.confidence:.2f}"
    arguments = json.dumps(approval.arguments, indent=2, ensure_ascii=False, sort_keys=True)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Approval needed: {approval.tool}"[:150])},
        {"type": "section", "text": _plain(approval.summary or "(no summary given)")},
        {
            "type": "section",
            "fields": [
                _plain(f"Confidence: {confidence}"),
                _plain(f"Impact: {approval.get_impact_display()}"),
                _plain(f"Agent: {approval.agent.name}"),
                _plain(f"Deadline: {approval.deadline_at:%Y-%m-%d %H:%M:%S} UTC"),
            ],
        },
    ]
    if approval.hold_reason:
        paused = _plain(f"Paused because: {approval.hold_reason}")
        blocks.append({"type": "section", "text": paused})
    blocks.append({"type": "section", "text": _plain(f"Arguments:\n{arguments}")})
    open_button = {
        "type": "button",
        "action_id": ACTION_OPEN,
        "text": _plain("Open"),
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
                    {
                        "type": "button",
                        "action_id": ACTION_APPROVE,
                        "style": "primary",
                        "text": _plain("Approve"),
                        "value": str(approval.code),
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_DENY,
                        "style": "danger",
                        "text": _plain("Deny"),
                        "value": str(approval.code),
                    },
                    open_button,
                ],
            }
        )
    return blocks


def outcome_text(approval: ApprovalRequest) -> str:
    decision = getattr(approval, "decision", None)
    who = ""
    if decision is not None and decision.reviewer is not None:
        who = f" by {decision.reviewer.get_username()}"
    return f"{approval.get_status_display()}{who}."


class SlackNotifier(Notifier):
    channel = Channel.SLACK

    def notify(self, notification: Notification) -> PostedMessage | None:
        approval = notification.approval
        blocks = approval_blocks(approval)
        fallback = f"Approval needed: {approval.tool}"
        if approval.is_terminal:
            fallback = f"{approval.tool}: {outcome_text(approval)}"
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
            # Posting to a member id opens (or reuses) the app's direct message with them.
            response = client.chat_postMessage(
                channel=profile.slack_user_id, text=fallback, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as error:
            raise _classify(error) from error
        except (URLError, OSError) as error:
            raise RetryableError(f"Slack unreachable: {error}") from error
        return PostedMessage(channel=str(response["channel"]), ts=str(response["ts"]))


def _classify(error: SlackApiError) -> Exception:
    response = error.response
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        try:
            delay = float(retry_after) if retry_after is not None else None
        except ValueError:
            delay = None
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
