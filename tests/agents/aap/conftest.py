"""AAP personas: a provisioner, an instance it provisioned, and HTTP clients for each."""

import uuid
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from agents.services import provisioner_token_create

BASE = "/aap/v1"
REFUND = {
    "tool": "issue_refund",
    "arguments": {"payment_id": "payment_123", "amount": 4900, "currency": "GBP"},
    "timeout": "30m",
}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def key() -> str:
    return str(uuid.uuid4())


@dataclass
class Instance:
    agent: Agent
    token: str
    client: APIClient

    def create(self, body: dict | None = None, idempotency_key: str | None = None, **kw):
        return self.client.post(
            f"{BASE}/requests",
            body if body is not None else REFUND,
            format="json",
            HTTP_IDEMPOTENCY_KEY=idempotency_key or key(),
            **kw,
        )


@pytest.fixture
def provisioner_token(db) -> str:
    return provisioner_token_create(name="platform").plaintext


@pytest.fixture
def provisioner(provisioner_token) -> APIClient:
    return bearer(provisioner_token)


def provision(provisioner: APIClient, **body: object) -> Instance:
    response = provisioner.post(
        f"{BASE}/instances", body, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201, response.content
    data = response.json()
    token = data["credential"]["token"]
    return Instance(Agent.objects.get(code=data["instance"]["id"]), token, bearer(token))


@pytest.fixture
def instance(provisioner) -> Instance:
    return provision(provisioner, instance_name="codex-chris-laptop")


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings) -> None:
    # A cache of its own per test, so counts never leak between tests (and no flush of the
    # Redis database the broker and channel layer share).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": str(uuid.uuid4()),
        }
    }
