"""7_async.md: receiver verification, the outbox and signed, retried `request.resolved` events."""

import time
import uuid
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker

from agents.models import Agent, WebhookNotification
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny
from console.celery import app
from tests.agents.aap.conftest import BASE, bearer, key
from tests.agents.aap.receiver import Receiver, new_secret, serve
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = True
    settings.AAP_WEBHOOK_RETRY_BASE_SECONDS = 0.2
    settings.AAP_WEBHOOK_RETRY_MAX_SECONDS = 1
    receiver = Receiver()
    server = serve(receiver)
    yield receiver
    server.shutdown()


def _provision(provisioner, receiver: Receiver):
    delivery = receiver.delivery()
    response = provisioner.post(
        f"{BASE}/instances",
        {"instance_name": "async-bot", "delivery": delivery},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.content
    return response.json(), delivery


def test_it_verifies_the_receiver_before_creating_the_instance(provisioner, receiver) -> None:
    body, delivery = _provision(provisioner, receiver)
    [verification] = receiver.verifications
    assert verification["type"] == "webhook.verification"
    assert verification["registration_id"] == delivery["registration_id"]
    assert verification["instance_id"] == body["instance"]["id"]
    uuid.UUID(verification["challenge"])
    assert verification["created_at"].endswith("Z")
    assert body["instance"]["delivery"] == {
        "type": "webhook",
        "url": delivery["url"],
        "registration_id": delivery["registration_id"],
    }
    # The secret is never returned.
    assert delivery["signing_secret"] not in str(body)
    read = provisioner.get(f"{BASE}/instances/{body['instance']['id']}")
    assert delivery["signing_secret"] not in read.content.decode()
    assert not receiver.invalid


def test_a_failed_verification_creates_nothing(provisioner, receiver) -> None:
    delivery = {**receiver.delivery(), "registration_id": str(uuid.uuid4())}  # not expected
    idempotency_key = key()
    response = provisioner.post(
        f"{BASE}/instances",
        {"delivery": delivery},
        format="json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "webhook_verification_failed"
    assert not Agent.objects.exists()
    # A retry with the same key may verify again, and succeeds once the receiver expects it.
    receiver.expect(delivery["registration_id"], delivery["signing_secret"])
    retry = provisioner.post(
        f"{BASE}/instances",
        {"delivery": delivery},
        format="json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key,
    )
    assert retry.status_code == 201


def test_a_failed_update_verification_changes_nothing(provisioner, receiver) -> None:
    body, _ = _provision(provisioner, receiver)
    url = f"{BASE}/instances/{body['instance']['id']}"
    replacement = {**receiver.delivery(), "registration_id": str(uuid.uuid4())}
    response = provisioner.patch(
        url,
        {"instance_name": "renamed", "delivery": replacement},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 422
    assert provisioner.get(url).json() == body["instance"]

    removed = provisioner.patch(url, {"delivery": None}, format="json", HTTP_IDEMPOTENCY_KEY=key())
    assert removed.status_code == 200
    assert "delivery" not in removed.json()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"type": "socket"}, "unsupported_delivery_type"),
        ({"url": "https://user:pw@example.com/hook"}, "invalid_webhook_url"),
        ({"url": "https://example.com/hook#frag"}, "invalid_webhook_url"),
        ({"url": "http://example.com/hook"}, "invalid_webhook_url"),
        ({"url": "https://127.0.0.1/hook"}, "invalid_webhook_url"),
        ({"url": "https://169.254.169.254/latest"}, "invalid_webhook_url"),
        ({"url": "https://[::1]/hook"}, "invalid_webhook_url"),
        ({"url": "https://10.0.0.7/hook"}, "invalid_webhook_url"),
    ],
)
def test_it_rejects_unsafe_or_unsupported_delivery(provisioner, change, code) -> None:
    # Private receivers are off by default (the spec's SSRF rules).
    delivery = {
        "type": "webhook",
        "url": "https://hooks.example.com/aap",
        "registration_id": str(uuid.uuid4()),
        "signing_secret": new_secret(),
        **change,
    }
    response = provisioner.post(
        f"{BASE}/instances", {"delivery": delivery}, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Agent.objects.exists()


def _wait_for(condition, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_receiver_gets_exactly_one_signed_event_per_resolved_request_despite_failures(
    provisioner, receiver
) -> None:
    receiver.fail_first = 2
    body, _ = _provision(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    reviewer = UserFactory(username="rita")
    created = [
        instance.post(
            f"{BASE}/requests",
            {"tool": "t", "arguments": {"n": n}, "timeout": "10m"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key(),
        ).json()
        for n in range(3)
    ]
    # Resolved before the worker starts: kombu's filesystem transport (the embedded broker) can
    # hand a worker a message file that another thread is still writing.
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=created[0]["id"]), reviewer=reviewer
    )
    approval_request_deny(
        approval=ApprovalRequest.objects.get(code=created[1]["id"]),
        reviewer=reviewer,
        reason="No.",
    )
    assert instance.delete(f"{BASE}/requests/{created[2]['id']}").status_code == 200
    # Reads and replays create no events.
    instance.get(f"{BASE}/requests/{created[0]['id']}")
    app.loader.import_default_modules()
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        assert _wait_for(lambda: len(receiver.events) == 3), (receiver.attempts, receiver.invalid)
        # Kept: that nothing more arrives is what is checked, so the test must wait a while;
        # 1.5 s is several retry intervals of this receiver's backoff.
        time.sleep(1.5)

    assert not receiver.invalid
    assert sorted(e["request_id"] for e in receiver.events) == sorted(c["id"] for c in created)
    assert all(count == 3 for count in receiver.attempts.values())  # two 500s, then accepted
    for event in receiver.events:
        assert set(event) == {"id", "type", "instance_id", "request_id", "created_at"}
        assert event["type"] == "request.resolved"
        assert event["instance_id"] == body["instance"]["id"]
        decision = instance.get(f"{BASE}/requests/{event['request_id']}").json()["decision"]
        assert event["created_at"] == decision["decided_at"]
    assert WebhookNotification.objects.filter(delivered_at__isnull=False).count() == 3


def test_deleting_the_instance_cancels_without_notifications(provisioner, receiver) -> None:
    body, _ = _provision(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    created = instance.post(
        f"{BASE}/requests",
        {"tool": "t", "arguments": {}, "timeout": "10m"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    ).json()
    assert provisioner.delete(f"{BASE}/instances/{body['instance']['id']}").status_code == 204
    assert ApprovalRequest.objects.get(code=created["id"]).status == "cancelled"
    assert not WebhookNotification.objects.exists()


def test_removing_delivery_ends_outstanding_notifications(provisioner, receiver) -> None:
    body, _ = _provision(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    created = instance.post(
        f"{BASE}/requests",
        {"tool": "t", "arguments": {}, "timeout": "10m"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    ).json()
    instance.delete(f"{BASE}/requests/{created['id']}")  # recorded; no worker delivers it here
    notification = WebhookNotification.objects.get()
    assert notification.delivered_at is None and notification.ended_at is None
    provisioner.patch(
        f"{BASE}/instances/{body['instance']['id']}",
        {"delivery": None},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    notification.refresh_from_db()
    assert notification.ended_reason == "delivery removed"


def test_beat_sweeps_for_due_notifications(settings) -> None:
    app.finalize()  # beat finalizes the app, which registers the periodic tasks
    entry = app.conf.beat_schedule["deliver due AAP webhook notifications"]
    assert entry["task"] == "outbox.requeue_due"
    assert entry["schedule"] == float(settings.AAP_WEBHOOK_SWEEP_SECONDS)


def test_an_event_whose_task_was_lost_is_delivered_by_the_sweep(provisioner, receiver) -> None:
    from approvals.outbox import KIND_AAP_WEBHOOK
    from approvals.tasks import requeue_due_outbox_rows

    body, _ = _provision(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    created = instance.post(
        f"{BASE}/requests",
        {"tool": "t", "arguments": {}, "timeout": "10m"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    ).json()
    instance.delete(f"{BASE}/requests/{created['id']}")
    # The broker loses every queued message (an outage without persistence): the outbox row
    # is all that is left.
    app.loader.import_default_modules()
    app.control.purge()
    assert WebhookNotification.objects.filter(delivered_at__isnull=True).count() == 1
    requeue_due_outbox_rows.delay(KIND_AAP_WEBHOOK)  # before the worker starts, as above
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        assert _wait_for(lambda: len(receiver.events) == 1), receiver.attempts
    assert receiver.events[0]["request_id"] == created["id"]
    assert WebhookNotification.objects.get().delivered_at is not None


def test_receiver_verifications_are_rate_limited(provisioner, receiver, settings) -> None:
    settings.AAP_LIMIT_VERIFICATIONS_PER_PROVISIONER_HOUR = 1
    _provision(provisioner, receiver)
    response = provisioner.post(
        f"{BASE}/instances",
        {"delivery": receiver.delivery()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit"
    assert int(response["Retry-After"]) > 0
    assert len(receiver.verifications) == 1  # no traffic to the receiver beyond the limit


def test_request_creation_is_rate_limited_per_instance(instance, settings) -> None:
    settings.AAP_LIMIT_REQUESTS_PER_INSTANCE_MINUTE = 2
    assert [instance.create().status_code for _ in range(3)] == [201, 201, 429]
    assert ApprovalRequest.objects.count() == 2


def test_requests_are_created_and_still_limited_while_redis_is_down(instance, settings) -> None:
    from tests.notify_servers import free_port

    # The counters' Redis is down: nothing listens where they live. Creating was a 500.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    settings.AAP_LIMIT_REQUESTS_PER_INSTANCE_MINUTE = 2
    # Each process counts on its own meanwhile: the limit still holds.
    assert [instance.create().status_code for _ in range(3)] == [201, 201, 429]
    assert ApprovalRequest.objects.count() == 2


def test_concurrent_attempts_with_one_key_verify_once_and_create_once(
    live_console, provisioner, provisioner_token, receiver
) -> None:
    import threading

    import httpx

    receiver.verification_delay = 0.5
    body = {"instance_name": "twin", "delivery": receiver.delivery()}
    idempotency_key = key()
    results: list[httpx.Response] = []

    def attempt() -> None:
        with httpx.Client(timeout=30) as client:
            results.append(
                client.post(
                    f"{live_console.url}{BASE}/instances",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {provisioner_token}",
                        "Idempotency-Key": idempotency_key,
                    },
                )
            )

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(r.status_code for r in results) == [200, 200, 201]
    assert len({r.json()["credential"]["token"] for r in results}) == 1
    assert len(receiver.verifications) == 1
    assert Agent.objects.count() == 1


def test_deliveries_to_one_host_are_rate_limited_without_losing_events(
    provisioner, receiver, settings
) -> None:
    from approvals.outbox import KIND_AAP_WEBHOOK, outbox_deliver

    settings.AAP_LIMIT_DELIVERIES_PER_HOST_MINUTE = 1
    body, _ = _provision(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    for _n in range(2):
        created = instance.post(
            f"{BASE}/requests",
            {"tool": "t", "arguments": {}, "timeout": "10m"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key(),
        ).json()
        instance.delete(f"{BASE}/requests/{created['id']}")
    first, second = WebhookNotification.objects.order_by("id")
    assert outbox_deliver(kind=KIND_AAP_WEBHOOK, row_id=first.pk) is None
    delay = outbox_deliver(kind=KIND_AAP_WEBHOOK, row_id=second.pk)
    assert delay is not None and 0 < delay <= 60
    second.refresh_from_db()
    first.refresh_from_db()
    assert first.delivered_at is not None
    assert second.delivered_at is None and second.ended_at is None  # postponed, not dropped
    assert second.attempts == 0
    assert len(receiver.events) == 1
