"""Reviewer API tokens: a digest stored, the token shown once, expiry, revocation, audit.

The attack: DRF's authtoken kept every reviewer's key in plaintext and listed it in the admin;
whoever could read the table or the admin list could act as any reviewer through the API.
"""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from approvals.audit import AuditAction
from approvals.models import AuditRecord
from approvals.reviewer_tokens import reviewer_token_issue, reviewer_token_revoke
from tests.factories import UserFactory
from tests.one_time_secrets import assert_shown_once_and_never_in_a_cookie

pytestmark = pytest.mark.django_db

LIST = "/api/v1/reviewer/requests"


def _api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _admin() -> Client:
    client = Client()
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def test_it_issues_a_token_in_the_admin_shown_once_and_stored_as_a_digest() -> None:
    ann = UserFactory(username="ann")
    admin = _admin()

    response = admin.post(
        "/admin/auth/user/", {"action": "issue_reviewer_token", "_selected_action": [ann.pk]}
    )

    found = re.search(r"acr_[0-9a-f]{64}", response.content.decode())
    assert found is not None, response.content.decode()[:2000]
    token = found.group(0)
    assert_shown_once_and_never_in_a_cookie(response, token)
    assert _api(token).get(LIST).status_code == 200
    # Stored: the prefix and a digest, never the token.
    [row] = AuthToken.objects.values()
    assert token not in str(row)
    assert row["token_key"] == token[:15]
    # Listed in the admin by prefix. (knox keys rows by the digest, so it is in the row links:
    # a SHA-512 of 256 random bits, useless for signing in.)
    listing = admin.get("/admin/knox/authtoken/").content.decode()
    assert f"{token[:15]}…" in listing
    assert token not in listing


def test_it_expires_tokens_after_the_configured_time(settings) -> None:
    issued = reviewer_token_issue(user=UserFactory(username="ann"))
    assert issued.token.expiry is not None
    lifetime = issued.token.expiry - issued.token.created
    assert abs(lifetime - timedelta(seconds=settings.REVIEWER_TOKEN_TTL_SECONDS)) < timedelta(
        seconds=5
    )

    AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    response = _api(issued.plaintext).get(LIST)

    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.json()["error"]["message"]


def test_it_revokes_in_the_admin_with_an_audit_record_and_no_secret() -> None:
    issued = reviewer_token_issue(user=UserFactory(username="ann"))
    admin = _admin()

    admin.post(
        "/admin/knox/authtoken/",
        {"action": "revoke", "_selected_action": [issued.token.pk]},
    )

    assert _api(issued.plaintext).get(LIST).status_code == 401
    records = list(
        AuditRecord.objects.filter(object_type="knox.authtoken").values_list(
            "action", "object_id", "actor_label"
        )
    )
    assert records == [
        (AuditAction.REVIEWER_TOKEN_ISSUED, issued.token.token_key, "console"),
        (AuditAction.REVIEWER_TOKEN_REVOKED, issued.token.token_key, "ops"),
    ]
    for record in AuditRecord.objects.all():
        assert issued.plaintext[15:] not in str(record.after) + str(record.context)


def test_it_records_one_revocation_when_revoked_twice() -> None:
    issued = reviewer_token_issue(user=UserFactory(username="ann"))
    assert reviewer_token_revoke(token=issued.token) is True
    assert reviewer_token_revoke(token=issued.token) is False
    assert AuditRecord.objects.filter(action=AuditAction.REVIEWER_TOKEN_REVOKED).count() == 1


def test_it_answers_an_old_plaintext_token_with_a_clear_401() -> None:
    UserFactory(username="ann")
    response = _api("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b").get(LIST)

    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert "acr_" in message and "no longer work" in message


def test_a_reviewer_sees_and_revokes_their_own_tokens_only() -> None:
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    mine = reviewer_token_issue(user=ann)
    theirs = reviewer_token_issue(user=bob)
    client = Client()
    client.force_login(ann)

    page = client.get("/notifications/preferences").content.decode()
    assert f"{mine.token.token_key}…" in page
    assert theirs.token.token_key not in page
    assert mine.plaintext not in page

    # Someone else's token: not found, and still working.
    refused = client.post(f"/account/api-tokens/{theirs.token.token_key}/revoke")
    assert refused.status_code == 404
    assert _api(theirs.plaintext).get(LIST).status_code == 200

    done = client.post(f"/account/api-tokens/{mine.token.token_key}/revoke")
    assert done.status_code == 302
    assert _api(mine.plaintext).get(LIST).status_code == 401


def test_create_reviewer_token_prints_a_working_token() -> None:
    UserFactory(username="ann")
    out, err = io.StringIO(), io.StringIO()

    call_command("create_reviewer_token", "ann", stdout=out, stderr=err)

    token = out.getvalue().strip()
    assert token.startswith("acr_")
    assert _api(token).get(LIST).status_code == 200
    assert "Expires" in err.getvalue()


def test_the_schema_documents_the_token_scheme() -> None:
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    assert "reviewerToken" in schema
