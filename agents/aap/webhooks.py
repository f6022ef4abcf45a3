"""AAP asynchronous mode: receiver verification, and `request.resolved` events as one kind of
row of the one outbox (approvals/outbox.py), with the AAP webhook as their transport.

Every outbound connection (verification and each delivery attempt) resolves the receiver's host,
checks every address against the SSRF rules of the spec, then connects to a checked address
(keeping the hostname for TLS), so a DNS change between check and connect cannot redirect us.
Redirects are never followed.
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agents.aap.limits import RateLimited, limit_count
from agents.models import WebhookNotification, WebhookReceiver
from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, Source
from approvals.outbox import (
    KIND_AAP_WEBHOOK,
    WINDOW_ENDED,
    Dropped,
    Outbox,
    outbox_enqueue_after_commit,
)
from console.errors import DomainError
from console.outbox import (
    Postponed,
    RetryableError,
    Transport,
    backoff_seconds,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format)
MAX_RESPONSE_BYTES = 16 * 1024


class UnsafeWebhookURL(DomainError):
    """The URL is malformed, or it leads to a loopback, private or otherwise non-public address."""

    code = "invalid_webhook_url"
    param = "delivery.url"


class WebhookUnreachable(DomainError):
    """The receiver could not be reached or did not answer as required."""

    code = "webhook_verification_failed"
    http_status = 422
    param = "delivery"

    @property
    def message(self) -> str:
        return f"The webhook receiver could not be verified: {self}"


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, ending in Z, as the protocol requires everywhere."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sign(*, secret: str, message_id: str, sent_at: int, body: bytes) -> str:
    """Standard Webhooks v1: HMAC-SHA256 over `id.timestamp.body` with the decoded secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{sent_at}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# --- Destination checks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    url: str  # the URL with the host replaced by a checked address
    host_header: str
    hostname: str
    is_https: bool


def url_check_syntax(url: str) -> None:
    """Reject malformed URLs and anything but HTTPS without userinfo or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeWebhookURL("The URL is malformed.") from None
    allowed = {"https", "http"} if settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS else {"https"}
    if parts.scheme not in allowed:
        raise UnsafeWebhookURL("The receiver URL must use HTTPS.")
    if not parts.hostname or "@" in parts.netloc or parts.fragment or "#" in url:
        raise UnsafeWebhookURL("The URL must have a host and no userinfo or fragment.")
    if any(c.isspace() for c in url) or (port is not None and not 0 < port < 65536):
        raise UnsafeWebhookURL("The URL is malformed.")


# IPv6 ranges that reach IPv4 hosts or were never public, which Python's is_global (3.12.1)
# counts as global: IPv4-compatible ::a.b.c.d (deprecated, and :: or ::1 under another name),
# local-use NAT64 (its IPv4 sits at an operator-chosen offset), site-local (deprecated, routed
# inside a site like fd00::/8) and Teredo (tunnels to an address we cannot check).
NEVER_PUBLIC_IPV6 = tuple(
    ipaddress.IPv6Network(network)
    for network in ("::/96", "64:ff9b:1::/48", "fec0::/10", "2001::/32")
)
# The well-known NAT64 prefix: a gateway turns 64:ff9b::a.b.c.d into a connection to a.b.c.d.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 address actually reaches: IPv4-mapped, NAT64 or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in NEVER_PUBLIC_IPV6):
            return False
        # Judge the host it reaches: 64:ff9b::a9fe:a9fe is the metadata service, 169.254.169.254.
        address = _embedded_ipv4(address) or address
    return address.is_global and not address.is_multicast


def destination_resolve(url: str) -> Destination:
    """Resolve and check the receiver's addresses now, for this one connection."""
    url_check_syntax(url)
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    is_https = parts.scheme == "https"
    port = parts.port or (443 if is_https else 80)
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookUnreachable("The receiver's host name does not resolve.") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookUnreachable("The receiver's host name does not resolve.")
    private = [a for a in addresses if not _is_public(a)]
    # Self-hosted deployments may allow receivers on loopback and private networks; plain HTTP is
    # then allowed only to those, never across the internet.
    if private and not settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS:
        raise UnsafeWebhookURL("The receiver resolves to a non-public address.")
    if not is_https and not private:
        raise UnsafeWebhookURL("The receiver URL must use HTTPS.")
    address = addresses[0]
    pinned = httpx.URL(url).copy_with(host=str(address))
    default_port = 443 if is_https else 80
    host_header = hostname if port == default_port else f"{hostname}:{port}"
    return Destination(str(pinned), host_header, hostname, is_https)


def _post(*, url: str, secret: str, message_id: str, body: bytes, timeout: float) -> httpx.Response:
    destination = destination_resolve(url)
    sent_at = int(time.time())
    headers = {
        "Host": destination.host_header,
        "Content-Type": "application/json",
        "User-Agent": "agent-approval-console",
        "webhook-id": message_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": sign(secret=secret, message_id=message_id, sent_at=sent_at, body=body),
    }
    extensions = {"sni_hostname": destination.hostname} if destination.is_https else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            "POST", destination.url, content=body, headers=headers, extensions=extensions
        )
        response = client.send(request, stream=True)
        try:
            # Bounded: a receiver cannot make us read an endless body.
            content = b""
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    break
            response._content = content[:MAX_RESPONSE_BYTES]
        finally:
            response.close()
    return response


# --- Verification -----------------------------------------------------------------------------


def receiver_verify(
    *, url: str, registration_id: uuid.UUID, signing_secret: str, instance_code: uuid.UUID
) -> None:
    """Send a signed challenge; only a 200 echoing it exactly within the timeout passes.

    Raises UnsafeWebhookURL (400) or WebhookUnreachable (422).
    """
    message_id = str(uuid.uuid4())
    challenge = str(uuid.uuid4())
    body = json.dumps(
        {
            "id": message_id,
            "type": "webhook.verification",
            "registration_id": str(registration_id),
            "instance_id": str(instance_code),
            "created_at": timestamp(timezone.now()),
            "challenge": challenge,
        }
    ).encode()
    try:
        response = _post(
            url=url,
            secret=signing_secret,
            message_id=message_id,
            body=body,
            timeout=settings.AAP_WEBHOOK_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        raise WebhookUnreachable(
            f"The receiver could not be reached ({type(error).__name__})."
        ) from None
    if response.status_code != 200:
        raise WebhookUnreachable(f"The receiver answered {response.status_code}, not 200.")
    try:
        answer = json.loads(response.content)
    except ValueError:
        raise WebhookUnreachable("The receiver did not answer with JSON.") from None
    if not isinstance(answer, dict) or answer.get("challenge") != challenge:
        raise WebhookUnreachable("The receiver did not echo the challenge.")


# --- The outbox -------------------------------------------------------------------------------


def notification_record(*, approval_id: int, decided_at: datetime) -> None:
    """Record the `request.resolved` event, inside the transaction that resolved the request.

    Only AAP requests of an instance with a receiver get one; a replay or a read never does,
    because only a transition calls this.
    """
    approval = ApprovalRequest.objects.select_related("agent").get(pk=approval_id)
    if approval.source != Source.AAP:
        return
    has_receiver = (
        WebhookReceiver.objects.filter(agent_id=approval.agent_id)
        .exclude(agent__aap_instance__deleted_at__isnull=False)
        .exists()
    )
    if not has_receiver:
        return
    event_id = uuid.uuid4()
    body = json.dumps(
        {
            "id": str(event_id),
            "type": "request.resolved",
            "instance_id": str(approval.agent.code),
            "request_id": str(approval.code),
            "created_at": timestamp(decided_at),
        },
        separators=(",", ":"),
    )
    notification = WebhookNotification.objects.create(
        code=event_id,
        agent_id=approval.agent_id,
        approval_id=approval_id,
        body=body,
        created_at=decided_at,
        deliver_until=decided_at + timedelta(seconds=settings.AAP_WEBHOOK_DELIVERY_WINDOW_SECONDS),
        next_attempt_at=decided_at,
    )
    outbox_enqueue_after_commit(kind=KIND_AAP_WEBHOOK, row_ids=[notification.pk])


def notifications_end(*, agent_id: int, reason: str) -> None:
    """Stop delivery and retries of an agent's outstanding events (delivery removed, deleted)."""
    WebhookNotification.objects.filter(
        agent_id=agent_id, delivered_at__isnull=True, ended_at__isnull=True
    ).update(ended_at=timezone.now(), ended_reason=reason)


class WebhookOutbox(Outbox[WebhookNotification]):
    """AAP `request.resolved` events as rows of the one outbox: no attempt limit but a retry
    window, jittered backoff, and the event id as the receiver's idempotency key."""

    kind = KIND_AAP_WEBHOOK
    model = WebhookNotification
    audit_sent = AuditAction.WEBHOOK_DELIVERED
    audit_failed = AuditAction.WEBHOOK_FAILED

    def lease_seconds(self) -> float:
        return float(settings.AAP_WEBHOOK_LEASE_SECONDS)

    def claimable(self, now: datetime) -> Q:
        return Q(delivered_at__isnull=True, ended_at__isnull=True, next_attempt_at__lte=now) & (
            Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        )

    def transport_for(self, row: WebhookNotification, now: datetime) -> Transport:
        if row.deliver_until <= now:
            raise Dropped(WINDOW_ENDED)
        receiver = (
            WebhookReceiver.objects.filter(agent_id=row.agent_id)
            .exclude(agent__aap_instance__deleted_at__isnull=False)
            .first()
        )
        if receiver is None:
            raise Dropped("delivery removed")
        return WebhookTransport(receiver)

    def deadline(self, row: WebhookNotification) -> datetime | None:
        return row.deliver_until

    def backoff(self, attempts: int) -> float:
        return backoff_seconds(
            attempts,
            base=float(settings.AAP_WEBHOOK_RETRY_BASE_SECONDS),
            cap=float(settings.AAP_WEBHOOK_RETRY_MAX_SECONDS),
            jitter=True,
        )

    def retry_from(self, claimed_at: datetime) -> datetime:
        # A send may have taken the whole timeout: the backoff counts from its end.
        return timezone.now()

    def sent_fields(self) -> dict[str, Any]:
        return {"delivered_at": timezone.now()}

    def failed_fields(self, *, reason: str, error: str) -> dict[str, Any]:
        # The receiver will never hear of this decision from us.
        return {"ended_at": timezone.now(), "ended_reason": reason, "last_error": error}

    def failed_audit_after(self, *, reason: str, error: str) -> dict[str, Any]:
        return {"ended_reason": reason, "last_error": error}

    def audit_context(self, row: WebhookNotification, receipt: object | None) -> dict[str, object]:
        return {
            "approval_id": row.approval_id,
            "attempts": row.attempts,
            "status_code": receipt.status_code if isinstance(receipt, WebhookAccepted) else None,
        }


@dataclass(frozen=True)
class WebhookAccepted:
    status_code: int


class WebhookTransport(Transport):
    """POST the event, signed, to the instance's receiver; any 2xx is delivery."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    def notify(self, notification: WebhookNotification) -> WebhookAccepted:
        host = (urlsplit(self.receiver.url).hostname or "").lower()
        try:
            limit_count(
                scope=f"deliver-host:{host}",
                what="deliveries to this host",
                limit=settings.AAP_LIMIT_DELIVERIES_PER_HOST_MINUTE,
                window_seconds=60,
            )
        except RateLimited as limited:
            # Our own limit, not a failed attempt: wait for the next window without counting one.
            raise Postponed(limited.retry_after) from None
        remaining = (notification.deliver_until - timezone.now()).total_seconds()
        try:
            response = _post(
                url=self.receiver.url,
                secret=self.receiver.signing_secret,
                # The receiver's idempotency key: a re-sent event is the same message.
                message_id=str(notification.code),
                body=notification.body.encode(),
                # Each attempt must end by the retry deadline.
                timeout=max(0.0, min(float(settings.AAP_WEBHOOK_TIMEOUT_SECONDS), remaining)),
            )
        except (httpx.HTTPError, UnsafeWebhookURL, WebhookUnreachable) as failure:
            raise RetryableError(f"{type(failure).__name__}: {failure}"[:500]) from None
        if 200 <= response.status_code < 300:
            return WebhookAccepted(response.status_code)
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise RetryableError(f"HTTP {response.status_code}", retry_after=retry_after)
