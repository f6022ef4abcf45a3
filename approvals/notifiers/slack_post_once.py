"""One Slack message per outbox row, though chat.postMessage takes no idempotency key.

A post can reach Slack while the worker never learns it did: Slack's answer is lost to a
timeout or a dropped connection, or the worker dies (or the database fails) before the row is
marked sent. The outbox then tries the row again, and a second post would show the reviewer the
same request twice, with only one copy updated when it is decided.

So every post carries message metadata naming its outbox row (`event_type`
"approval_notification", `event_payload` the row's id and the request's code), and the row
records when it was first tried, before anything is sent. A try after that first one (a retry,
a lease that ran out, an operator's "retry") cannot know whether an earlier one got through, so
it looks first: it opens the app's direct message with the reviewer (conversations.open) and
reads its history since the first try, minus a margin for clocks (conversations.history with
`include_all_metadata`, a few bounded pages). A message carrying this row's metadata is adopted
as the one sent; only when there is none does it post.

The app needs the scopes that reading its own direct messages takes: `im:write`
(conversations.open) and `im:history` (conversations.history), besides `chat:write`.
"""

from datetime import datetime, timedelta
from typing import Any
from urllib.error import URLError

from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from approvals.models import Notification
from approvals.notifiers.base import PostedMessage, RetryableError
from console.outbox import retry_after_seconds

EVENT_TYPE = "approval_notification"
LOOKUP_FAILED = "could not check Slack for an earlier post"
# Slack stamps a message with its own clock; ours may differ a little.
CLOCK_MARGIN = timedelta(minutes=5)
# Newest first. Enough for every message in one reviewer's direct message over the hours a
# row is retried, and few enough calls (each up to the client's 10 s timeout) that the lookup
# and the post end well inside the row's lease (NOTIFICATION_LEASE_SECONDS, 120 s).
HISTORY_PAGE_SIZE = 100
HISTORY_MAX_PAGES = 5


def slack_post_metadata(notification: Notification) -> dict[str, Any]:
    """What marks a message as this row's: its id, and the request's code (unique across
    installations too, should two consoles ever share a bot)."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "notification_id": notification.pk,
            "approval_code": str(notification.approval.code),
        },
    }


def slack_post_once(
    client: WebClient,
    notification: Notification,
    *,
    member_id: str,
    text: str,
    blocks: list[dict[str, Any]],
) -> PostedMessage:
    """Post the row's message to the reviewer, unless an earlier try already did: then that
    message is the one sent. Slack's errors propagate (SlackApiError, URLError, OSError), except
    the lookup's, which are RetryableError."""
    metadata = slack_post_metadata(notification)
    if notification.first_attempt_at is None:
        _record_first_attempt(notification)
    else:
        earlier = _earlier_post(
            client, member_id=member_id, metadata=metadata, since=notification.first_attempt_at
        )
        if earlier is not None:
            return earlier
    response = client.chat_postMessage(
        channel=member_id, text=text, blocks=blocks, unfurl_links=False, metadata=metadata
    )
    return PostedMessage(channel=str(response["channel"]), ts=str(response["ts"]))


def _record_first_attempt(notification: Notification) -> None:
    # Committed before the post (outbox deliveries run in autocommit): had this write failed,
    # the exception stops the try before anything reaches Slack, so a row without the mark has
    # certainly never been posted, and a row with it is always looked for before posting.
    Notification.objects.filter(pk=notification.pk, first_attempt_at__isnull=True).update(
        first_attempt_at=timezone.now()
    )


def _earlier_post(
    client: WebClient,
    *,
    member_id: str,
    metadata: dict[str, Any],
    since: datetime,
) -> PostedMessage | None:
    """The message an earlier try posted for this row, or None when there is certainly none.

    Fails closed: when Slack cannot be asked (down, rate limited, a scope missing, more history
    than the bound), the try ends with RetryableError and nothing is posted. Posting anyway
    would bring back the duplicate this exists to prevent, and not posting is never a loss:
    the row stays due, is tried again with backoff, and after NOTIFICATION_MAX_ATTEMPTS is
    marked failed with the reason, listed in the admin for an operator to retry (after adding
    the scope, say). Even a refusal that would end a post for good (`missing_scope`) only
    retries here: it is the lookup's, and says nothing about whether the message arrived.
    """
    oldest = (since - CLOCK_MARGIN).timestamp()
    try:
        conversation = str(client.conversations_open(users=member_id)["channel"]["id"])
        found = _find_in_history(
            client, conversation=conversation, oldest=oldest, metadata=metadata
        )
    except SlackApiError as error:
        raise _lookup_failed(error) from error
    except (URLError, OSError) as error:
        raise RetryableError(f"{LOOKUP_FAILED}: Slack unreachable: {error}") from error
    return PostedMessage(channel=conversation, ts=found) if found is not None else None


def _find_in_history(
    client: WebClient, *, conversation: str, oldest: float, metadata: dict[str, Any]
) -> str | None:
    """The ts of the oldest message since `oldest` that carries `metadata`, or None."""
    found = None
    cursor = None
    for _ in range(HISTORY_MAX_PAGES):
        page = client.conversations_history(
            channel=conversation,
            oldest=f"{oldest:.6f}",
            limit=HISTORY_PAGE_SIZE,
            include_all_metadata=True,
            cursor=cursor,
        )
        for message in page.get("messages") or []:
            if _carries(message, metadata):
                found = str(message["ts"])  # newest first: the last match is the first post
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return found
    if found is None:
        raise RetryableError(
            f"{LOOKUP_FAILED}: more than {HISTORY_PAGE_SIZE * HISTORY_MAX_PAGES} messages since "
            "the first attempt"
        )
    return found


def _carries(message: dict[str, Any], metadata: dict[str, Any]) -> bool:
    carried = message.get("metadata") or {}
    payload = carried.get("event_payload") or {}
    wanted = metadata["event_payload"]
    return carried.get("event_type") == metadata["event_type"] and all(
        payload.get(key) == value for key, value in wanted.items()
    )


def _lookup_failed(error: SlackApiError) -> RetryableError:
    response = error.response
    code = str(response.data.get("error", "")) if isinstance(response.data, dict) else ""
    retry_after = None
    if response.status_code == 429:
        retry_after = retry_after_seconds(
            response.headers.get("Retry-After") or response.headers.get("retry-after")
        )
    return RetryableError(
        f"{LOOKUP_FAILED}: Slack error {response.status_code}: {code or 'unknown'}",
        retry_after=retry_after,
    )
