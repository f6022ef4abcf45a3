"""Write paths for agents and their credentials."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from agents.models import Agent, AgentCredential
from approvals.audit import AuditAction, audit_record

CREDENTIAL_SCHEME = "aac"


@dataclass(frozen=True)
class IssuedCredential:
    """A credential as issued: `plaintext` exists only here, never in the database."""

    credential: AgentCredential
    plaintext: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Who acted: a reviewer (user), or None when the console itself or an operator's shell did.
Actor = AbstractBaseUser | None


@transaction.atomic
def agent_create(*, name: str, description: str = "", actor: Actor = None) -> Agent:
    agent = Agent.objects.create(name=name, description=description)
    audit_record(
        action=AuditAction.AGENT_CREATED,
        actor=actor,
        target=agent,
        after={"name": name, "description": description},
    )
    return agent


@transaction.atomic
def agent_create_with_credential(
    *, name: str, description: str = "", actor: Actor = None
) -> IssuedCredential:
    agent = agent_create(name=name, description=description, actor=actor)
    return credential_issue(agent=agent, label="initial", actor=actor)


@transaction.atomic
def credential_issue(*, agent: Agent, label: str = "", actor: Actor = None) -> IssuedCredential:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    credential = AgentCredential.objects.create(
        agent=agent, prefix=prefix, secret_digest=_digest(secret), label=label
    )
    # The prefix identifies the credential; the secret and its digest never enter the trail.
    audit_record(
        action=AuditAction.CREDENTIAL_ISSUED,
        actor=actor,
        object_type="agents.agentcredential",
        object_id=prefix,
        object_label=f"{agent.name}: aac_{prefix}_…",
        after={"agent": str(agent.code), "label": label},
    )
    return IssuedCredential(
        credential=credential, plaintext=f"{CREDENTIAL_SCHEME}_{prefix}_{secret}"
    )


@transaction.atomic
def credential_revoke(*, credential: AgentCredential, actor: Actor = None) -> None:
    now = timezone.now()
    revoked = AgentCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if revoked:
        audit_record(
            action=AuditAction.CREDENTIAL_REVOKED,
            actor=actor,
            object_type="agents.agentcredential",
            object_id=credential.prefix,
            object_label=f"aac_{credential.prefix}_…",
            before={"revoked_at": None},
            after={"revoked_at": now},
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
