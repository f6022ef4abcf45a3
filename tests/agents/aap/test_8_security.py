"""8_security.md: SSRF rules on every outbound connection, secrets kept secret, no redirects."""

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.aap import webhooks
from agents.models import AgentCredential, ProvisionerToken, WebhookReceiver
from tests.agents.aap.conftest import BASE, key
from tests.agents.aap.receiver import Receiver, new_secret, serve


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        # IPv6 spellings of IPv4 hosts, and ranges Python's is_global counts as global:
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
        "https://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "https://[64:ff9b::a01:203]/hook",  # NAT64 of 10.1.2.3
        "https://[64:ff9b:1::808:808]/hook",  # local-use NAT64
        "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
        "https://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "https://[::127.0.0.1]/hook",  # IPv4-compatible
        "https://[::8.8.8.8]/hook",  # IPv4-compatible, deprecated whatever it embeds
        "https://[fec0::1]/hook",  # site-local
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  # Teredo
        "https://[ff0e::1]/hook",  # multicast
    ],
)
def test_it_refuses_non_public_destinations(url, settings) -> None:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = False
    with pytest.raises(webhooks.UnsafeWebhookURL):
        webhooks.destination_resolve(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://[64:ff9b::808:808]/hook",  # NAT64 of a public address (DNS64 networks)
        "https://[2002:808:808::1]/hook",  # 6to4 of a public address
        "https://[::ffff:8.8.8.8]:8443/hook",
    ],
)
def test_it_accepts_public_destinations(url, settings) -> None:
    # IP literals: resolving them needs no DNS, so this runs offline.
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = False
    destination = webhooks.destination_resolve(url)
    assert destination.is_https


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "https://u:p@example.com/x",
        "https://example.com/x#f",
        "ftp://example.com",
    ],
)
def test_it_refuses_malformed_or_insecure_urls(url, settings) -> None:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = False
    with pytest.raises(webhooks.UnsafeWebhookURL):
        webhooks.url_check_syntax(url)


def test_it_connects_to_the_address_it_checked(settings) -> None:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = True
    destination = webhooks.destination_resolve("http://localhost:8123/hook?x=1")
    # Pinned to the resolved address, so a DNS change after the check cannot redirect us.
    assert destination.url.startswith(("http://127.0.0.1:8123/hook", "http://[::1]:8123/hook"))
    assert destination.host_header == "localhost:8123"


@pytest.mark.django_db
def test_a_redirecting_receiver_fails_verification(provisioner, settings) -> None:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = True
    receiver = Receiver()
    target = serve(receiver)
    registration_id, secret = str(uuid.uuid4()), new_secret()
    receiver.expect(registration_id, secret)

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", receiver.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    try:
        delivery = {
            "type": "webhook",
            "url": f"http://127.0.0.1:{redirector.server_address[1]}/hook",
            "registration_id": registration_id,
            "signing_secret": secret,
        }
        response = provisioner.post(
            f"{BASE}/instances", {"delivery": delivery}, format="json", HTTP_IDEMPOTENCY_KEY=key()
        )
        assert response.status_code == 422
        assert receiver.verifications == []  # the redirect was not followed
    finally:
        redirector.shutdown()
        target.shutdown()


@pytest.mark.django_db
def test_credentials_are_stored_only_as_digests(provisioner_token, instance) -> None:
    secret = instance.token.split("_", 2)[2]
    credential = AgentCredential.objects.get(agent=instance.agent)
    assert secret not in (credential.secret_digest, credential.prefix)
    stored = ProvisionerToken.objects.get()
    assert provisioner_token.split("_", 2)[2] != stored.secret_digest


@pytest.mark.django_db
def test_the_signing_secret_is_never_shown(admin_client, provisioner, settings) -> None:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = True
    receiver = Receiver()
    server = serve(receiver)
    registration_id, secret = str(uuid.uuid4()), new_secret()
    receiver.expect(registration_id, secret)
    try:
        response = provisioner.post(
            f"{BASE}/instances",
            {
                "delivery": {
                    "type": "webhook",
                    "url": receiver.url,
                    "registration_id": registration_id,
                    "signing_secret": secret,
                }
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=key(),
        )
    finally:
        server.shutdown()
    assert response.status_code == 201
    assert secret not in response.content.decode()
    agent_pk = WebhookReceiver.objects.get().agent_id
    page = admin_client.get(f"/admin/agents/agent/{agent_pk}/change/")
    assert page.status_code == 200
    assert secret not in page.content.decode()
