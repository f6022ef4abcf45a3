"""Write paths for agents and their credentials."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from agents.models import Agent, AgentCredential, ProvisionerToken

CREDENTIAL_SCHEME = "aac"
PROVISIONER_SCHEME = "aapp"


@dataclass(frozen=True)
class IssuedCredential:
    """A credential as issued: `plaintext` exists only here, never in the database."""

    credential: AgentCredential
    plaintext: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def agent_create(*, name: str, description: str = "") -> Agent:
    return Agent.objects.create(name=name, description=description)


@transaction.atomic
def agent_create_with_credential(*, name: str, description: str = "") -> IssuedCredential:
    agent = agent_create(name=name, description=description)
    return credential_issue(agent=agent, label="initial")


def credential_issue(
    *, agent: Agent, label: str = "", secret: str | None = None
) -> IssuedCredential:
    """Issue a credential. `secret` is for callers that must re-derive it (AAP provisioning)."""
    prefix = secrets.token_hex(6)
    secret = secret or secrets.token_urlsafe(32)
    credential = AgentCredential.objects.create(
        agent=agent, prefix=prefix, secret_digest=_digest(secret), label=label
    )
    return IssuedCredential(
        credential=credential, plaintext=f"{CREDENTIAL_SCHEME}_{prefix}_{secret}"
    )


def credential_revoke(*, credential: AgentCredential) -> None:
    AgentCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def credential_authenticate(*, token: str) -> Agent | None:
    """The agent a plaintext credential belongs to, or None if unknown, malformed or revoked."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != CREDENTIAL_SCHEME or not prefix or not secret:
        return None
    credential = (
        AgentCredential.objects.select_related("agent")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if credential is None or not hmac.compare_digest(credential.secret_digest, _digest(secret)):
        return None
    return credential.agent


@dataclass(frozen=True)
class IssuedProvisionerToken:
    token: ProvisionerToken
    plaintext: str


def provisioner_token_create(*, name: str) -> IssuedProvisionerToken:
    """A token for `POST /aap/v1/instances`: it manages instances, never makes requests."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ProvisionerToken.objects.create(name=name, prefix=prefix, secret_digest=_digest(secret))
    return IssuedProvisionerToken(token=token, plaintext=f"{PROVISIONER_SCHEME}_{prefix}_{secret}")


def provisioner_token_authenticate(*, token: str) -> ProvisionerToken | None:
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != PROVISIONER_SCHEME or not prefix or not secret:
        return None
    provisioner = ProvisionerToken.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if provisioner is None or not hmac.compare_digest(provisioner.secret_digest, _digest(secret)):
        return None
    return provisioner
