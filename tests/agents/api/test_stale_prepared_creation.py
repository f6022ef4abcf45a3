"""An agent's creation right after a rolling deploy's migration changed a column under the
hot path's prepared statements: answered 201, stored once (console/hot_statements.py)."""

import pytest
from django.db import connection

from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, AuditRecord
from tests.schema_changes import CREDENTIAL_LOOKUP, HALTS_READ, columns_retyped

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="prepared statements of PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]

BODY = {"tool": "issue_refund", "arguments": {"amount": 4900}, "timeout": "30m", "summary": "s"}


def _create(client, key: str):
    return client.post("/api/v1/requests", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize(
    "retyped",
    [
        pytest.param(CREDENTIAL_LOOKUP, id="outside-a-transaction"),
        pytest.param(HALTS_READ, id="in-the-creations-transaction"),
    ],
)
def test_a_creation_after_a_column_type_change_is_answered_201_and_stored_once(
    agent_client, retyped
) -> None:
    # The connection prepares the credential's lookup and the creation's statements.
    assert _create(agent_client, "before").status_code == 201

    with columns_retyped(retyped):
        response = _create(agent_client, "after")

        assert response.status_code == 201, response.content
        assert ApprovalRequest.objects.filter(idempotency_key="after").count() == 1
        approval = ApprovalRequest.objects.get(idempotency_key="after")
        assert response.json()["id"] == str(approval.code)
        # Its audit trail was written once too.
        submitted = AuditRecord.objects.filter(
            object_id=str(approval.code), action=AuditAction.REQUEST_SUBMITTED
        )
        assert submitted.count() == 1
        # And the replay is one.
        assert _create(agent_client, "after").status_code == 200
        assert ApprovalRequest.objects.count() == 2
