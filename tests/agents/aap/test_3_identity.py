"""3_identity.md: credentials, provisioning tokens, one identity, deletion against creation."""

import threading
import uuid
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from agents.models import Agent, ProvisionerToken
from approvals.models import ApprovalRequest, Status
from tests.agents.aap.conftest import BASE, REFUND, bearer, key, provision


@pytest.mark.django_db
def test_create_provisioner_token_prints_a_working_token_stored_hashed() -> None:
    out = StringIO()
    call_command("create_provisioner_token", "platform", stdout=out, stderr=StringIO())
    token = out.getvalue().strip()
    stored = ProvisionerToken.objects.get(name="platform")
    assert token.split("_", 2)[2] not in (stored.secret_digest, stored.prefix)
    response = bearer(token).post(
        f"{BASE}/instances", {"instance_name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201


@pytest.mark.django_db
def test_a_revoked_provisioner_token_is_rejected(provisioner, provisioner_token) -> None:
    from django.utils import timezone

    ProvisionerToken.objects.update(revoked_at=timezone.now())
    response = provisioner.get(f"{BASE}/instances/{uuid.uuid4()}")
    assert response.status_code == 401


@pytest.mark.django_db
def test_an_instance_is_an_agent_on_the_one_admin_page(admin_client, instance) -> None:
    assert Agent.objects.filter(code=instance.agent.code).exists()
    page = admin_client.get(f"/admin/agents/agent/{instance.agent.pk}/change/")
    assert page.status_code == 200
    assert "codex-chris-laptop" in page.content.decode()


@pytest.mark.django_db
def test_the_provider_owns_names(provisioner) -> None:
    first = provision(provisioner, instance_name="codex")
    second = provision(provisioner, instance_name="codex")
    assert first.agent.name == "codex"
    assert second.agent.name != "codex" and second.agent.name.startswith("codex")


@pytest.mark.django_db(transaction=True)
def test_deletion_racing_creation_leaves_nothing_pending(live_console, provisioner) -> None:
    instance = provision(provisioner, instance_name="racer")
    provisioner_header = provisioner._credentials["HTTP_AUTHORIZATION"]
    base = f"{live_console.url}{BASE}"
    statuses: list[int] = []
    start = threading.Barrier(9)

    def create() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {instance.token}"}, timeout=30) as c:
            start.wait()
            for _ in range(3):
                response = c.post(
                    f"{base}/requests", json=REFUND, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                statuses.append(response.status_code)

    def delete() -> None:
        with httpx.Client(headers={"Authorization": provisioner_header}, timeout=30) as c:
            start.wait()
            assert c.delete(f"{base}/instances/{instance.agent.code}").status_code == 204

    threads = [threading.Thread(target=create) for _ in range(8)] + [
        threading.Thread(target=delete)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert set(statuses) <= {201, 401}
    assert not ApprovalRequest.objects.filter(agent=instance.agent, status=Status.PENDING).exists()
    assert ApprovalRequest.objects.filter(agent=instance.agent).count() == statuses.count(201)
