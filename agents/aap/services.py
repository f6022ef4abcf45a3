"""AAP instance lifecycle and request creation, on top of agents and approvals services.

An AAP instance is an Agent (plus an AapInstance row saying which provisioner manages it).
Deletion and request creation both lock the agent's row, so a request can never be created
for an instance whose deletion has committed, nor survive it pending.
"""

# long: one instance lifecycle (provision, update, delete); its replays share private helpers

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.aap import webhooks
from agents.aap.limits import limit_count
from agents.models import (
    AapInstance,
    Agent,
    AgentCredential,
    InstanceOperation,
    OperationClaim,
    ProvisionerToken,
    WebhookReceiver,
)
from agents.services import CREDENTIAL_SCHEME, credential_issue, credential_revoke
from approvals.audit import AuditAction, AuditActor, audit_record
from approvals.exceptions import IdempotencyConflict, TransitionConflict
from approvals.models import ApprovalRequest, AuditActorType, Source, Status
from approvals.services import Submission, approval_request_cancel, approval_request_create
from console.errors import DomainError


class InstanceNotFound(DomainError):
    code = "not_found"
    http_status = 404

    def __init__(self) -> None:
        super().__init__("No such instance.")


class InstanceDeleted(DomainError):
    code = "instance_deleted"
    http_status = 409

    def __init__(self) -> None:
        super().__init__("The instance created with this key has been deleted.")


class OperationInProgress(DomainError):
    """Another attempt with the same idempotency key is still running."""

    code = "operation_in_progress"
    http_status = 409
    param = "Idempotency-Key"

    def __init__(self) -> None:
        super().__init__("Another attempt with this idempotency key is still running; retry.")


class InstanceRetired(DomainError):
    """The instance was deleted while its credential was in use."""

    code = "invalid_credential"
    http_status = 401

    def __init__(self) -> None:
        super().__init__("The instance was deleted.")


@dataclass(frozen=True)
class DeliveryInput:
    url: str
    registration_id: uuid.UUID
    signing_secret: str


@dataclass(frozen=True)
class ProvisionedInstance:
    agent: Agent
    token: str
    created: bool


# Marks "delivery not supplied" in an update, as opposed to delivery: null (remove it).
UNCHANGED = object()


def _fingerprint(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _delivery_document(delivery: DeliveryInput | None) -> dict[str, str] | None:
    return None if delivery is None else {k: str(v) for k, v in asdict(delivery).items()}


def _provisioner_actor(provisioner: ProvisionerToken) -> AuditActor:
    # A provisioner is a platform's machine credential, neither a reviewer nor an agent: the
    # console acting on its word, named by the token's public prefix (never its secret).
    return AuditActor(
        type=AuditActorType.SYSTEM,
        id=f"provisioner:{provisioner.prefix}",
        label=f"provisioner {provisioner.name}"[:200],
    )


def _free_name(requested: str | None, code: uuid.UUID, *, exclude_pk: int | None = None) -> str:
    """The provider owns names: a taken name gets the instance's short id appended."""
    name = requested or f"aap-{str(code)[:8]}"
    taken = Agent.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    return f"{name}-{str(code)[:8]}" if taken.exists() else name


def instance_document(agent: Agent) -> dict[str, Any]:
    """The protocol's Instance object. Never contains a credential or signing secret."""
    document: dict[str, Any] = {"id": str(agent.code), "name": agent.name}
    receiver = WebhookReceiver.objects.filter(agent=agent).first()
    if receiver is not None:
        document["delivery"] = {
            "type": "webhook",
            "url": receiver.url,
            "registration_id": str(receiver.registration_id),
        }
    return document


def instance_provision(
    *,
    provisioner: ProvisionerToken,
    provisioner_token: str,
    idempotency_key: str,
    name: str | None,
    delivery: DeliveryInput | None,
) -> ProvisionedInstance:
    """Create an instance and its credential, verifying the receiver first.

    A replay (same key, same input) returns the same instance and the same credential, which
    only the caller's `provisioner_token` (the plaintext it authenticated with) can recompute.
    Raises IdempotencyConflict, InstanceDeleted, webhooks.UnsafeWebhookURL/WebhookUnreachable.
    """
    fingerprint = _fingerprint({"name": name, "delivery": _delivery_document(delivery)})
    existing = _provision_record(provisioner, idempotency_key)
    if existing is not None:
        return _provision_replay(existing, fingerprint, provisioner_token)
    with _operation_claim(provisioner, InstanceOperation.Kind.PROVISION, "", idempotency_key):
        # A concurrent attempt with this key may have finished while we waited for the claim.
        existing = _provision_record(provisioner, idempotency_key)
        if existing is not None:
            return _provision_replay(existing, fingerprint, provisioner_token)
        return _provision(
            provisioner, provisioner_token, idempotency_key, fingerprint, name, delivery
        )


def _provision(
    provisioner: ProvisionerToken,
    provisioner_token: str,
    idempotency_key: str,
    fingerprint: str,
    name: str | None,
    delivery: DeliveryInput | None,
) -> ProvisionedInstance:
    code = uuid.uuid4()
    if delivery is not None:
        _limit_verifications(provisioner, delivery)
        # Outside any transaction: the receiver gets up to ten seconds, and no lock is held.
        webhooks.receiver_verify(
            url=delivery.url,
            registration_id=delivery.registration_id,
            signing_secret=delivery.signing_secret,
            instance_code=code,
        )
    with transaction.atomic():
        # Belt and braces for a claim taken over from a holder that was merely slow: the second
        # attempt waits here, finds the record and replays it instead of committing twice.
        ProvisionerToken.objects.select_for_update().get(pk=provisioner.pk)
        existing = _provision_record(provisioner, idempotency_key)
        if existing is not None:
            return _provision_replay(existing, fingerprint, provisioner_token)
        agent = Agent.objects.create(
            code=code,
            name=_free_name(name, code),
            description="Provisioned through the Agent Approval Protocol.",
        )
        AapInstance.objects.create(agent=agent, provisioner=provisioner)
        if delivery is not None:
            _receiver_save(agent, delivery)
        salt = secrets.token_urlsafe(32)
        operation = InstanceOperation.objects.create(
            provisioner=provisioner,
            kind=InstanceOperation.Kind.PROVISION,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            agent=agent,
            credential_salt=salt,
        )
        issued = credential_issue(
            agent=agent,
            label="AAP provisioning",
            secret=_instance_secret(provisioner_token, salt),
        )
        operation.credential = issued.credential
        operation.save(update_fields=["credential"])
        audit_record(
            action=AuditAction.INSTANCE_PROVISIONED,
            actor=_provisioner_actor(provisioner),
            target=agent,
            after=instance_document(agent),
            context={"idempotency_key": idempotency_key},
        )
    return ProvisionedInstance(agent=agent, token=issued.plaintext, created=True)


@contextlib.contextmanager
def _operation_claim(
    provisioner: ProvisionerToken, kind: str, scope: str, idempotency_key: str
) -> Iterator[None]:
    """Hold the claim on (provisioner, operation, key): concurrent same-key attempts coalesce.

    A second attempt waits here until the first finishes, then replays its recorded result, so
    the receiver sees one verification and the operation commits once.
    """
    hold = timedelta(seconds=settings.AAP_WEBHOOK_TIMEOUT_SECONDS + 10)
    give_up_at = time.monotonic() + hold.total_seconds()
    fields = {
        "provisioner": provisioner,
        "kind": kind,
        "scope": scope,
        "idempotency_key": idempotency_key,
    }
    while True:
        now = timezone.now()
        OperationClaim.objects.filter(**fields, claimed_until__lt=now).delete()  # holder died
        try:
            with transaction.atomic():
                claim = OperationClaim.objects.create(**fields, claimed_until=now + hold)
            break
        except IntegrityError:
            if time.monotonic() > give_up_at:
                raise OperationInProgress() from None
            time.sleep(0.05)
    try:
        yield
    finally:
        claim.delete()


def _limit_verifications(provisioner: ProvisionerToken, delivery: DeliveryInput) -> None:
    # Verification traffic goes to hosts we do not control: bound it per account and per host,
    # so more instances or other URL paths cannot multiply it.
    limit_count(
        scope=f"verify-provisioner:{provisioner.pk}",
        what="receiver verifications",
        limit=settings.AAP_LIMIT_VERIFICATIONS_PER_PROVISIONER_HOUR,
        window_seconds=3600,
    )
    limit_count(
        scope=f"verify-host:{(urlsplit(delivery.url).hostname or '').lower()}",
        what="receiver verifications for this host",
        limit=settings.AAP_LIMIT_VERIFICATIONS_PER_HOST_HOUR,
        window_seconds=3600,
    )


def _provision_record(provisioner: ProvisionerToken, key: str) -> InstanceOperation | None:
    return (
        InstanceOperation.objects.select_related("agent__aap_instance", "credential")
        .filter(
            provisioner=provisioner,
            kind=InstanceOperation.Kind.PROVISION,
            scope="",
            idempotency_key=key,
        )
        .first()
    )


def _instance_secret(provisioner_token: str, salt: str) -> str:
    """The instance credential's secret, computable only with the provisioner's own token.

    The spec has a provisioning replay return "the original instance and credential" without
    renewing it, and concurrent same-key attempts coalesce onto one result, so every answer for
    a key must carry the same secret; yet we store only its digest. Keying the secret to the
    provisioner token the caller presents (stored only as a digest too) and a random salt
    meets both without storing or rebuilding it from stored material: a database copy plus
    SECRET_KEY (what derived credentials used to need) yields nothing, and only the caller the
    spec already entitles to the replay can recompute it. Revoking that provisioner token ends
    even that.
    """
    digest = hmac.new(provisioner_token.encode(), f"aap-instance:{salt}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def _provision_replay(
    operation: InstanceOperation, fingerprint: str, provisioner_token: str
) -> ProvisionedInstance:
    if operation.fingerprint != fingerprint:
        raise IdempotencyConflict()
    if operation.agent.aap_instance.deleted_at is not None:
        raise InstanceDeleted()
    if not operation.credential_salt:
        return _legacy_provision_replay(operation, provisioner_token)
    credential: AgentCredential = operation.credential  # type: ignore[assignment]
    secret = _instance_secret(provisioner_token, operation.credential_salt)
    token = f"{CREDENTIAL_SCHEME}_{credential.prefix}_{secret}"
    return ProvisionedInstance(agent=operation.agent, token=token, created=False)


def _legacy_provision_replay(
    operation: InstanceOperation, provisioner_token: str
) -> ProvisionedInstance:
    # Instances provisioned before credentials were keyed to the provisioner token carry a
    # secret derived from SECRET_KEY, which is no longer computed anywhere. Their replay cannot
    # return it, and must not add a second live credential: it replaces it, in the audit trail.
    with transaction.atomic():
        locked = InstanceOperation.objects.select_for_update().get(pk=operation.pk)
        if locked.credential_salt:  # a concurrent replay replaced it first
            return _provision_replay(locked, locked.fingerprint, provisioner_token)
        if locked.credential is not None:
            credential_revoke(credential=locked.credential)
        locked.credential_salt = secrets.token_urlsafe(32)
        issued = credential_issue(
            agent=operation.agent,
            label="AAP provisioning (reissued)",
            secret=_instance_secret(provisioner_token, locked.credential_salt),
        )
        locked.credential = issued.credential
        locked.save(update_fields=["credential", "credential_salt"])
    return ProvisionedInstance(agent=operation.agent, token=issued.plaintext, created=False)


def _receiver_save(agent: Agent, delivery: DeliveryInput) -> None:
    WebhookReceiver.objects.update_or_create(
        agent=agent,
        defaults={
            "url": delivery.url,
            "registration_id": delivery.registration_id,
            "signing_secret": delivery.signing_secret,
            "verified_at": timezone.now(),
        },
    )


def instance_get(*, provisioner: ProvisionerToken, code: uuid.UUID) -> Agent:
    """A live instance within the provisioner's scope; anything else is not found."""
    agent = (
        Agent.objects.filter(
            code=code, aap_instance__provisioner=provisioner, aap_instance__deleted_at__isnull=True
        )
        .select_related("aap_instance")
        .first()
    )
    if agent is None:
        raise InstanceNotFound()
    return agent


def instance_update(
    *,
    provisioner: ProvisionerToken,
    code: uuid.UUID,
    idempotency_key: str,
    name: str | None,
    delivery: Any = UNCHANGED,
) -> dict[str, Any]:
    """Rename and/or replace or remove delivery; returns the Instance document.

    A replay returns the original result without applying anything again, so it can never
    overwrite a later update. A replacement receiver is verified before anything changes.
    """
    agent = instance_get(provisioner=provisioner, code=code)
    fingerprint = _fingerprint(
        {
            "name": name,
            "delivery": "unchanged" if delivery is UNCHANGED else _delivery_document(delivery),
        }
    )
    existing = _update_record(provisioner, code, idempotency_key)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict()
        return existing.result  # type: ignore[no-any-return]
    with _operation_claim(provisioner, InstanceOperation.Kind.UPDATE, str(code), idempotency_key):
        return _update(provisioner, agent, idempotency_key, fingerprint, name, delivery)


def _update(
    provisioner: ProvisionerToken,
    agent: Agent,
    idempotency_key: str,
    fingerprint: str,
    name: str | None,
    delivery: Any,
) -> dict[str, Any]:
    code = agent.code
    existing = _update_record(provisioner, code, idempotency_key)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict()
        return existing.result  # type: ignore[no-any-return]
    if isinstance(delivery, DeliveryInput):
        _limit_verifications(provisioner, delivery)
        webhooks.receiver_verify(
            url=delivery.url,
            registration_id=delivery.registration_id,
            signing_secret=delivery.signing_secret,
            instance_code=agent.code,
        )
    with transaction.atomic():
        # Deletion takes the same lock: it wins over an update still being verified.
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        if AapInstance.objects.filter(agent=agent, deleted_at__isnull=False).exists():
            raise InstanceNotFound()
        existing = _update_record(provisioner, code, idempotency_key)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise IdempotencyConflict()
            return existing.result  # type: ignore[no-any-return]
        before = instance_document(agent)
        if name is not None and name != agent.name:
            agent.name = _free_name(name, agent.code, exclude_pk=agent.pk)
            agent.save(update_fields=["name"])
        if isinstance(delivery, DeliveryInput):
            _receiver_save(agent, delivery)
        elif delivery is None:
            WebhookReceiver.objects.filter(agent=agent).delete()
            webhooks.notifications_end(agent_id=agent.pk, reason="delivery removed")
        result = instance_document(agent)
        audit_record(
            action=AuditAction.INSTANCE_UPDATED,
            actor=_provisioner_actor(provisioner),
            target=agent,
            before=before,
            after=result,
            context={"idempotency_key": idempotency_key},
        )
        InstanceOperation.objects.create(
            provisioner=provisioner,
            kind=InstanceOperation.Kind.UPDATE,
            scope=str(code),
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            agent=agent,
            result=result,
        )
    return result


def _update_record(
    provisioner: ProvisionerToken, code: uuid.UUID, key: str
) -> InstanceOperation | None:
    return InstanceOperation.objects.filter(
        provisioner=provisioner,
        kind=InstanceOperation.Kind.UPDATE,
        scope=str(code),
        idempotency_key=key,
    ).first()


def instance_delete(*, provisioner: ProvisionerToken, code: uuid.UUID) -> None:
    """Retire an instance: revoke its credentials, cancel its pending requests, end delivery.

    The cancellations send no webhook events (the receiver is retired too). Repeating it is a
    no-op; the agent row, its requests and decisions stay.
    """
    with transaction.atomic():
        agent = (
            Agent.objects.select_for_update()
            .filter(code=code, aap_instance__provisioner=provisioner)
            .first()
        )
        if agent is None:
            raise InstanceNotFound()
        instance = AapInstance.objects.get(agent=agent)
        if instance.deleted_at is not None:
            return
        now = timezone.now()
        audit_record(
            action=AuditAction.INSTANCE_DELETED,
            actor=_provisioner_actor(provisioner),
            target=agent,
            before=instance_document(agent),
            after={"deleted_at": now},
        )
        instance.deleted_at = now
        instance.save(update_fields=["deleted_at"])
        AgentCredential.objects.filter(agent=agent, revoked_at__isnull=True).update(revoked_at=now)
        WebhookReceiver.objects.filter(agent=agent).delete()
        webhooks.notifications_end(agent_id=agent.pk, reason="instance deleted")
        for approval in ApprovalRequest.objects.filter(agent=agent, status=Status.PENDING):
            # Past its deadline it expires instead; either way nothing is left pending.
            with contextlib.suppress(TransitionConflict):
                approval_request_cancel(
                    approval=approval, agent=agent, note="The instance was deleted.", notify=False
                )


def aap_request_create(
    *, agent: Agent, idempotency_key: str, submission: Submission
) -> tuple[ApprovalRequest, bool]:
    """approval_request_create for AAP, serialized against the instance's deletion."""
    limit_count(
        scope=f"requests:{agent.pk}",
        what="approval requests",
        limit=settings.AAP_LIMIT_REQUESTS_PER_INSTANCE_MINUTE,
        window_seconds=60,
    )
    with transaction.atomic():
        Agent.objects.select_for_update().filter(pk=agent.pk).first()
        if AapInstance.objects.filter(agent=agent, deleted_at__isnull=False).exists():
            raise InstanceRetired()
        return approval_request_create(
            agent=agent, idempotency_key=idempotency_key, submission=submission, source=Source.AAP
        )
