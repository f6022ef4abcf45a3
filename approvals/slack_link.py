"""Linking a reviewer to their Slack account, with proof.

A Slack member id decides whose click an Approve button in Slack is. It used to be typed in by
the reviewer and believed, so anyone could claim a colleague's id: their clicks were then
recorded as the claimant's, and the real owner could no longer link it. Now a claim is only a
claim (SlackLinkClaim) until the reviewer types back a code the console sent to that member by
direct message; only someone who reads that member's Slack can. Then the id becomes the
reviewer's link (NotificationPreference.slack_user_id, unique among links). Admins may still set
a link directly in the admin.

Codes: 8 characters from 31 unambiguous ones (about 40 bits), valid CODE_SECONDS, at most
MAX_ATTEMPTS tries each, a new one at most every RESEND_SECONDS; stored as an HMAC bound to the
reviewer and the member id, so a leaked table gives no usable code and a code fits one claim.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.error import URLError

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from slack_sdk.errors import SlackApiError

from approvals.audit import AuditAction, audit_record
from approvals.models import NotificationPreference, SlackLinkClaim
from approvals.notifiers.slack import slack_client

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_SECONDS = 10 * 60
MAX_ATTEMPTS = 5
RESEND_SECONDS = 60
# Slack member ids: U… for users, W… for Enterprise Grid users.
MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")


class SlackLinkRefused(Exception):
    """Why a claim or a code was not accepted, in words for the reviewer."""


@dataclass(frozen=True)
class SlackLinkState:
    linked: str  # the proven member id, or ""
    claim: SlackLinkClaim | None


def slack_link_state(*, user: User) -> SlackLinkState:
    preference = NotificationPreference.objects.filter(user=user).first()
    return SlackLinkState(
        linked=preference.slack_user_id if preference else "",
        claim=SlackLinkClaim.objects.filter(user=user).first(),
    )


def _digest(*, user: User, slack_user_id: str, code: str) -> str:
    value = f"{user.pk}:{slack_user_id}:{code}"
    return salted_hmac("approvals.slack_link", value, algorithm="sha256").hexdigest()


def _normalized(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", code.upper())


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def slack_link_start(*, user: User, slack_user_id: str) -> SlackLinkClaim:
    """Claim a Slack member id and send it a code by direct message. Raises SlackLinkRefused."""
    slack_user_id = slack_user_id.strip().upper()
    if not MEMBER_ID.match(slack_user_id):
        raise SlackLinkRefused(
            "Not a Slack member id: it starts with U (or W) and is letters and digits, "
            "e.g. U024BE7LH (Slack: your profile, ⋮, Copy member ID)."
        )
    if not settings.SLACK_BOT_TOKEN:
        raise SlackLinkRefused("Slack is not configured on this console.")
    if slack_link_state(user=user).linked == slack_user_id:
        raise SlackLinkRefused("That Slack account is already linked to you.")
    now = timezone.now()
    previous = SlackLinkClaim.objects.filter(user=user).first()
    if previous is not None and previous.sent_at is not None:
        wait = previous.sent_at + timedelta(seconds=RESEND_SECONDS) - now
        if wait > timedelta(0):
            raise SlackLinkRefused(
                f"A code was sent less than a minute ago: wait {int(wait.total_seconds()) + 1} s."
            )
    code = _new_code()
    shown = f"{code[:4]}-{code[4:]}"
    text = (
        f"Someone signed in to the approval console as {user.get_username()!r} asked to link "
        f"this Slack account to theirs. If that was you, type this code on the console's "
        f"notification preferences page: {shown} (valid {CODE_SECONDS // 60} minutes). "
        "If it was not you, ignore this message: nothing is linked without the code."
    )
    try:
        # Posting to a member id opens (or reuses) the app's direct message with that member.
        # Plain text: the username is not ours to let Slack read as markup.
        slack_client().chat_postMessage(
            channel=slack_user_id, text=text, mrkdwn=False, unfurl_links=False
        )
    except SlackApiError as error:
        reason = (
            error.response.data.get("error", "") if isinstance(error.response.data, dict) else ""
        )
        raise SlackLinkRefused(
            f"Slack did not deliver the code ({reason or 'error'}): check the member id."
        ) from error
    except (URLError, OSError) as error:
        raise SlackLinkRefused("Slack could not be reached: try again in a moment.") from error
    # Stored only once sent: a code nobody received must not count against the next one.
    claim, _ = SlackLinkClaim.objects.update_or_create(
        user=user,
        defaults={
            "slack_user_id": slack_user_id,
            "code_digest": _digest(user=user, slack_user_id=slack_user_id, code=code),
            "sent_at": now,
            "expires_at": now + timedelta(seconds=CODE_SECONDS),
            "attempts": 0,
        },
    )
    return claim


def slack_link_verify(*, user: User, code: str) -> str:
    """Check the code typed back; on a match the claimed id becomes the reviewer's link.

    Returns the linked member id. Raises SlackLinkRefused (a wrong code still counts).
    """
    refusal = ""
    linked = ""
    with transaction.atomic():
        # Locked: two tries at once are counted one after the other, never both as the first.
        claim = SlackLinkClaim.objects.select_for_update().filter(user=user).first()
        if claim is None or not claim.code_digest:
            refusal = "No code is waiting: send one first."
        elif claim.expires_at is None or claim.expires_at <= timezone.now():
            refusal = "The code has expired: send a new one."
        elif claim.attempts >= MAX_ATTEMPTS:
            refusal = "Too many wrong codes: send a new one."
        else:
            claim.attempts += 1
            claim.save(update_fields=["attempts"])
            expected = _digest(user=user, slack_user_id=claim.slack_user_id, code=_normalized(code))
            if not constant_time_compare(expected, claim.code_digest):
                left = MAX_ATTEMPTS - claim.attempts
                refusal = f"That code is not right ({left} {'try' if left == 1 else 'tries'} left)."
            elif (
                NotificationPreference.objects.filter(slack_user_id=claim.slack_user_id)
                .exclude(user=user)
                .exists()
            ):
                refusal = "That Slack account is linked to another reviewer: an admin can move it."
            else:
                linked = _link(user=user, slack_user_id=claim.slack_user_id)
                claim.delete()
    # Raised after the commit: a wrong code must count even though it is refused.
    if refusal:
        raise SlackLinkRefused(refusal)
    return linked


def _link(*, user: User, slack_user_id: str) -> str:
    preference, _ = NotificationPreference.objects.get_or_create(user=user)
    before = preference.slack_user_id
    preference.slack_user_id = slack_user_id
    preference.save(update_fields=["slack_user_id"])
    audit_record(
        action=AuditAction.SLACK_LINKED,
        actor=user,
        target=user,
        before={"slack_user_id": before},
        after={"slack_user_id": slack_user_id},
    )
    return slack_user_id


def slack_link_remove(*, user: User) -> None:
    """Unlink the reviewer's Slack account and drop any pending claim."""
    with transaction.atomic():
        SlackLinkClaim.objects.filter(user=user).delete()
        preference = NotificationPreference.objects.filter(user=user).exclude(slack_user_id="")
        before = preference.values_list("slack_user_id", flat=True).first()
        if before is not None:
            preference.update(slack_user_id="")
            audit_record(
                action=AuditAction.SLACK_UNLINKED,
                actor=user,
                target=user,
                before={"slack_user_id": before},
                after={"slack_user_id": ""},
            )
