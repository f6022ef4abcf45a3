"""A reviewer's decision right after a rolling deploy's migration changed a column under a
prepared lock every decision takes (console/hot_statements.py): the request's, first, or the
audit chain head's, which its audit record takes. The first attempt is answered as usual,
recorded once; a decision that lost its race meanwhile stays lost."""

from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, ApprovalVote, AuditRecord, Decision, Status
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory, reviewer_api_token
from tests.races import run_at_once
from tests.schema_changes import APPROVAL_LOCK, AUDIT_HEAD, columns_retyped

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="prepared statements of PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def api(reviewer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(reviewer)}")
    # The connection prepares the decision's statements: the request's lock, the audit head's.
    approval = ApprovalRequestFactory()
    assert _post(client, "approve", approval, {"confirm": approval.tool}).status_code == 200
    return client


def _post(client: APIClient, name: str, approval: ApprovalRequest, body: dict) -> Any:
    url = reverse(f"api-v1:reviewer-request-{name}", args=[approval.code])
    return client.post(url, body, format="json")


def _records(approval: ApprovalRequest, action: str) -> int:
    return AuditRecord.objects.filter(object_id=str(approval.code), action=action).count()


@pytest.mark.parametrize(
    ("name", "body", "status", "action"),
    [
        pytest.param(
            "approve", {"confirm": "issue_refund"}, Status.APPROVED, AuditAction.REQUEST_APPROVED
        ),
        pytest.param(
            "approve",
            {"confirm": "issue_refund", "arguments": {"payment_id": "pay_1", "amount": 100}},
            Status.APPROVED,
            AuditAction.REQUEST_APPROVED,
            id="approve-with-changes",
        ),
        pytest.param("deny", {"reason": "No."}, Status.DENIED, AuditAction.REQUEST_DENIED),
    ],
)
def test_it_decides_at_the_first_attempt_after_a_column_type_change(
    api, name, body, status, action
) -> None:
    approval = ApprovalRequestFactory()
    with columns_retyped(APPROVAL_LOCK):
        response = _post(api, name, approval, body)

        assert response.status_code == 200, response.content
        approval.refresh_from_db()
        assert approval.status == status
        assert Decision.objects.filter(approval=approval).count() == 1
        assert _records(approval, action) == 1


def test_it_decides_at_the_first_attempt_after_a_column_type_change_of_the_audit_head(
    api,
) -> None:
    # Its guard, a trigger this connection has run, plans with the head's column types too:
    # after the change it still checks the head's move instead of failing (migration 0027).
    approval = ApprovalRequestFactory()
    with columns_retyped(AUDIT_HEAD):
        response = _post(api, "deny", approval, {"reason": "No."})

        assert response.status_code == 200, response.content
        approval.refresh_from_db()
        assert approval.status == Status.DENIED
        assert _records(approval, AuditAction.REQUEST_DENIED) == 1


def test_it_counts_a_vote_at_the_first_attempt_after_a_column_type_change(api) -> None:
    approval = ApprovalRequestFactory(required_approvals=2)
    with columns_retyped(APPROVAL_LOCK):
        response = _post(api, "approve", approval, {"confirm": approval.tool})

        assert response.status_code == 200, response.content
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
        assert ApprovalVote.objects.filter(approval=approval).count() == 1
        assert _records(approval, AuditAction.VOTE_CAST) == 1


def test_it_escalates_at_the_first_attempt_after_a_column_type_change(api) -> None:
    approval = ApprovalRequestFactory()
    second_line = TeamFactory(name="second-line")
    with columns_retyped(APPROVAL_LOCK):
        response = _post(api, "escalate", approval, {"team": "second-line", "note": "Too big."})

        assert response.status_code == 200, response.content
        approval.refresh_from_db()
        assert approval.team_id == second_line.pk
        assert approval.events.filter(kind="escalated").count() == 1
        assert _records(approval, AuditAction.REQUEST_ESCALATED) == 1


def test_a_decision_that_lost_its_race_meanwhile_is_not_made_by_the_run_again(api) -> None:
    approval = ApprovalRequestFactory()
    other = UserFactory(username="sam", is_staff=True)
    with columns_retyped(APPROVAL_LOCK):
        # Another reviewer decides first, on a connection of its own.
        (won,) = run_at_once(
            [lambda: approval_request_approve(approval=approval, reviewer=other, note="Mine.")]
        )
        assert won.status == Status.APPROVED

        response = _post(api, "deny", approval, {"reason": "No."})

        assert response.status_code == 409, response.content
        decision = Decision.objects.get(approval=approval)
        assert (decision.status, decision.reviewer_id) == (Status.APPROVED, other.pk)
        assert _records(approval, AuditAction.REQUEST_APPROVED) == 1
        assert _records(approval, AuditAction.REQUEST_DENIED) == 0
