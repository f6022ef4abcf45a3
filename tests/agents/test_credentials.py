import io
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agents.models import Agent, AgentCredential
from agents.services import credential_authenticate, credential_issue, credential_revoke
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_it_stores_only_a_digest_of_the_credential() -> None:
    issued = credential_issue(agent=AgentFactory())
    row = AgentCredential.objects.get(pk=issued.credential.pk)
    secret = issued.plaintext.split("_", 2)[2]
    assert secret not in row.secret_digest
    assert issued.plaintext not in str(AgentCredential.objects.values().get(pk=row.pk))


def test_it_authenticates_the_issued_credential_and_nothing_close() -> None:
    agent = AgentFactory()
    plaintext = credential_issue(agent=agent).plaintext
    assert credential_authenticate(token=plaintext) == agent
    assert (
        credential_authenticate(token=plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))
        is None
    )
    assert credential_authenticate(token="") is None


def test_the_authenticated_agent_reads_as_the_orm_reads_it() -> None:
    # Its code is what audit records name the agent by: a UUID on every database, not the
    # text SQLite stores.
    agent = AgentFactory()
    found = credential_authenticate(token=credential_issue(agent=agent).plaintext)
    assert found is not None
    stored = Agent.objects.get(pk=agent.pk)
    assert (found.code, found.name, found.created_at) == (
        stored.code,
        stored.name,
        stored.created_at,
    )
    assert isinstance(found.code, uuid.UUID)


def test_it_stops_authenticating_a_revoked_credential() -> None:
    issued = credential_issue(agent=AgentFactory())
    credential_revoke(credential=issued.credential)
    assert credential_authenticate(token=issued.plaintext) is None


def test_create_agent_prints_a_working_credential() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_agent", "billing-bot", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert Agent.objects.filter(name="billing-bot").exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post(
        "/api/v1/requests",
        {"tool": "t", "arguments": {}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 201


def test_create_agent_refuses_a_duplicate_name() -> None:
    from django.core.management.base import CommandError

    call_command("create_agent", "dup", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_agent", "dup", stdout=io.StringIO(), stderr=io.StringIO())
