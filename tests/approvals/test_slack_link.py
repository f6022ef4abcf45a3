"""A Slack member id is linked to a reviewer only with proof: a code sent to it by direct message.

The attack: a reviewer typed a colleague's Slack member id into their preferences; the
colleague's clicks in Slack were then recorded as the attacker's, and the colleague could no
longer link their own id.
"""

import importlib
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone
from slack_sdk.signature import SignatureVerifier

from approvals.audit import AuditAction
from approvals.models import (
    AuditRecord,
    Impact,
    NotificationPreference,
    SlackLinkClaim,
    Status,
)
from approvals.slack_link import MAX_ATTEMPTS
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.notify_servers import slack_api  # noqa: F401

pytestmark = pytest.mark.django_db

PREFERENCES = "/notifications/preferences"
SEND = "/notifications/slack-link/send-code"
CHECK = "/notifications/slack-link/check-code"


def _signed_in(username: str) -> Client:
    client = Client()
    client.force_login(UserFactory(username=username))
    return client


def _linked(username: str) -> str:
    preference = NotificationPreference.objects.filter(user__username=username).first()
    return preference.slack_user_id if preference else ""


def _code_sent_to(api, member: str) -> str:
    [call] = [c for c in api.calls_to("chat.postMessage") if c.body["channel"] == member]
    found = re.search(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", call.body["text"])
    assert found is not None, call.body["text"]
    return found.group(1)


def _click_approve(approval, member: str) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": member},
        "actions": [{"action_id": "approval_approve", "value": str(approval.code)}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier("test-signing-secret").generate_signature(
        timestamp=timestamp, body=body
    )
    response = Client().post(
        "/integrations/slack/interactions",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE=signature,
    )
    assert response.status_code == 200


def test_the_preferences_form_no_longer_links_a_member_id(slack_api) -> None:  # noqa: F811
    client = _signed_in("mallory")

    client.post(PREFERENCES, {"slack_user_id": "U0ALICE", "time_zone": "UTC"})

    assert _linked("mallory") == ""


def test_it_links_only_after_the_code_sent_by_direct_message_comes_back(slack_api) -> None:  # noqa: F811
    client = _signed_in("alice")
    # Low impact: a Slack click may approve it (high impact needs the console's confirmation).
    approval = ApprovalRequestFactory(
        team=TeamFactory(name="ops", members=[_user("alice")]), impact=Impact.LOW
    )

    assert client.post(SEND, {"slack_user_id": "u0alice"}).status_code == 302
    code = _code_sent_to(slack_api, "U0ALICE")
    # Claimed, not linked: a click from that member decides nothing yet.
    assert _linked("alice") == ""
    _click_approve(approval, "U0ALICE")
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    page = client.get(PREFERENCES).content.decode()
    assert "A code was sent to <code>U0ALICE</code>" in page
    assert code not in page

    assert client.post(CHECK, {"code": code.lower().replace("-", " ")}).status_code == 302

    assert _linked("alice") == "U0ALICE"
    assert not SlackLinkClaim.objects.exists()
    [record] = AuditRecord.objects.filter(action=AuditAction.SLACK_LINKED)
    assert (record.actor_label, record.after) == ("alice", {"slack_user_id": "U0ALICE"})
    _click_approve(approval, "U0ALICE")
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert approval.decision.reviewer.username == "alice"


def _user(username: str):
    return UserFactory(username=username)


def test_a_claim_on_someone_elses_id_links_nothing_and_never_blocks_them(slack_api) -> None:  # noqa: F811
    mallory = _signed_in("mallory")
    alice = _signed_in("alice")

    assert mallory.post(SEND, {"slack_user_id": "U0ALICE"}).status_code == 302
    # The DM went to alice's Slack, not to mallory: mallory can only guess.
    wrong = mallory.post(CHECK, {"code": "AAAA-AAAA"})
    assert wrong.status_code == 400
    assert "That code is not right" in wrong.content.decode()
    assert _linked("mallory") == ""

    # alice links her own id despite mallory's pending claim.
    slack_api.calls.clear()
    alice.post(SEND, {"slack_user_id": "U0ALICE"})
    alice.post(CHECK, {"code": _code_sent_to(slack_api, "U0ALICE")})
    assert _linked("alice") == "U0ALICE"
    assert _linked("mallory") == ""


def test_it_limits_the_tries_per_code(slack_api) -> None:  # noqa: F811
    client = _signed_in("alice")
    client.post(SEND, {"slack_user_id": "U0ALICE"})
    code = _code_sent_to(slack_api, "U0ALICE")

    for _ in range(MAX_ATTEMPTS):
        assert client.post(CHECK, {"code": "ZZZZ-ZZZZ"}).status_code == 400
    late = client.post(CHECK, {"code": code})

    assert late.status_code == 400
    assert "Too many wrong codes" in late.content.decode()
    assert _linked("alice") == ""


def test_it_refuses_an_expired_code(slack_api) -> None:  # noqa: F811
    client = _signed_in("alice")
    client.post(SEND, {"slack_user_id": "U0ALICE"})
    code = _code_sent_to(slack_api, "U0ALICE")
    SlackLinkClaim.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(CHECK, {"code": code})

    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert _linked("alice") == ""


def test_it_refuses_a_code_for_an_id_already_linked_to_another_reviewer(slack_api) -> None:  # noqa: F811
    NotificationPreference.objects.create(user=_user("bob"), slack_user_id="U0SHARED")
    client = _signed_in("alice")
    client.post(SEND, {"slack_user_id": "U0SHARED"})

    response = client.post(CHECK, {"code": _code_sent_to(slack_api, "U0SHARED")})

    assert response.status_code == 400
    assert "linked to another reviewer" in response.content.decode()
    assert (_linked("alice"), _linked("bob")) == ("", "U0SHARED")


def test_it_waits_before_sending_another_code(slack_api) -> None:  # noqa: F811
    client = _signed_in("alice")
    client.post(SEND, {"slack_user_id": "U0ALICE"})

    again = client.post(SEND, {"slack_user_id": "U0OTHER"})

    assert again.status_code == 400
    assert "wait" in again.content.decode()
    assert len(slack_api.calls_to("chat.postMessage")) == 1


@pytest.mark.parametrize("member", ["alice", "<@U0ALICE>", "U0", "C0CHANNEL1"])
def test_it_refuses_what_is_not_a_member_id(slack_api, member: str) -> None:  # noqa: F811
    client = _signed_in("alice")

    response = client.post(SEND, {"slack_user_id": member})

    assert response.status_code == 400
    assert "Not a Slack member id" in response.content.decode()
    assert slack_api.calls_to("chat.postMessage") == []
    assert not SlackLinkClaim.objects.exists()


def test_it_says_when_slack_cannot_deliver_the_code(slack_api) -> None:  # noqa: F811
    slack_api.scripted.append((200, {}, {"ok": False, "error": "user_not_found"}))
    client = _signed_in("alice")

    response = client.post(SEND, {"slack_user_id": "U0NOBODY"})

    assert response.status_code == 400
    assert "user_not_found" in response.content.decode()
    assert not SlackLinkClaim.objects.exists()


def test_unlinking_is_audited(slack_api) -> None:  # noqa: F811
    client = _signed_in("alice")
    client.post(SEND, {"slack_user_id": "U0ALICE"})
    client.post(CHECK, {"code": _code_sent_to(slack_api, "U0ALICE")})

    client.post("/notifications/slack-link/unlink")

    assert _linked("alice") == ""
    assert AuditRecord.objects.filter(action=AuditAction.SLACK_UNLINKED).count() == 1


def test_the_migration_turns_links_made_without_proof_into_claims() -> None:
    migration = importlib.import_module(
        "approvals.migrations.0015_api_tokens_hashed_slack_links_proven"
    )
    NotificationPreference.objects.create(user=_user("alice"), slack_user_id="U0ALICE")
    NotificationPreference.objects.create(user=_user("bob"))

    migration.slack_links_to_unproven_claims(apps, None)

    assert (_linked("alice"), _linked("bob")) == ("", "")
    [claim] = SlackLinkClaim.objects.all()
    assert (claim.user.username, claim.slack_user_id, claim.code_digest) == ("alice", "U0ALICE", "")
