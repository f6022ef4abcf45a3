"""5_http.md: conventions, idempotency, the request and instance operations, errors."""

import base64
import hashlib
import hmac
import json
import re
import uuid

import pytest
from django.conf import settings
from django.db import DatabaseError
from django.test import override_settings

from agents.models import AgentCredential, InstanceOperation
from agents.services import provisioner_token_create
from approvals.models import ApprovalRequest, Status
from approvals.services import approval_request_approve
from tests.agents.aap.conftest import BASE, REFUND, bearer, key, provision
from tests.factories import agent_with_token

pytestmark = pytest.mark.django_db

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _assert_error(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) <= {"type", "code", "message", "param", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    uuid.UUID(error["request_id"])
    if param is not None:
        assert error["param"] == param
    return error


# --- Conventions ------------------------------------------------------------------------------


def test_it_returns_a_pending_request_with_uuid_id_and_utc_timestamps(instance) -> None:
    response = instance.create()
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["id"])
    assert body["status"] == "pending"
    assert body["tool"] == "issue_refund"
    assert body["timeout"] == "30m"
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["deadline_at"])
    assert "decision" not in body
    uuid.UUID(response["X-Request-ID"])


def test_it_echoes_arguments_losslessly(instance) -> None:
    raw = (
        '{"tool": "t", "timeout": "1m", "arguments": '
        '{"zeta": 0.1000000000000000055511151231257827, "alpha": 12345678901234567890123,'
        ' "m": 1.50, "e": 1E+400, "nested": {"b": [1.0, 2], "a": null}}}'
    )
    response = instance.client.post(
        f"{BASE}/requests", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201, response.content
    text = response.content.decode()
    assert (
        '"arguments":{"zeta":0.1000000000000000055511151231257827,"alpha":12345678901234567890123,'
        '"m":1.50,"e":1E+400,"nested":{"b":[1.0,2],"a":null}}' in text
    )
    # Reads echo it the same way.
    read = instance.client.get(f"{BASE}/requests/{response.json()['id']}")
    assert '"zeta":0.1000000000000000055511151231257827,"alpha"' in read.content.decode()


def test_it_rejects_unknown_top_level_fields_but_keeps_arguments_and_context_open(instance) -> None:
    response = instance.create({**REFUND, "priority": "high"})
    _assert_error(response, 400, "invalid_field", param="priority")
    assert not ApprovalRequest.objects.exists()

    open_body = {**REFUND, "arguments": {"anyThing-Goes": {"x": 1}}, "context": {"Session ID": 7}}
    response = instance.create(open_body)
    assert response.status_code == 201
    assert response.json()["arguments"] == {"anyThing-Goes": {"x": 1}}
    assert response.json()["context"] == {"Session ID": 7}


def test_it_accepts_and_echoes_the_server_field(instance) -> None:
    response = instance.create({**REFUND, "server": {"name": "payments-mcp", "version": 2}})
    assert response.status_code == 201, response.content
    assert response.json()["server"] == {"name": "payments-mcp", "version": 2}


@override_settings(AAP_ACCEPT_SERVER_FIELD=False)
def test_a_strict_provider_refuses_the_server_extension(instance) -> None:
    # `server` is an extension (the spec's CreateApprovalRequest has additionalProperties: false);
    # switched off, it is an unknown field like any other.
    response = instance.create({**REFUND, "server": {"name": "payments-mcp"}})

    _assert_error(response, 400, "invalid_field", param="server")
    assert not ApprovalRequest.objects.exists()


def test_a_strict_provider_never_echoes_a_server_stored_before(instance) -> None:
    created = instance.create({**REFUND, "server": {"name": "payments-mcp"}})
    assert created.status_code == 201, created.content

    with override_settings(AAP_ACCEPT_SERVER_FIELD=False):
        read = instance.client.get(f"{BASE}/requests/{created.json()['id']}")

    assert read.status_code == 200
    assert "server" not in read.json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "0s"),
        ("timeout", "30"),
        ("timeout", "1d"),
        ("timeout", 30),
        ("tool", 42),
        ("tool", ""),
        ("arguments", [1, 2]),
        ("context", "text"),
        ("agent_reasoning", {"a": 1}),
    ],
)
def test_it_rejects_invalid_fields_naming_them(instance, field, value) -> None:
    response = instance.create({**REFUND, field: value})
    _assert_error(response, 400, "invalid_field", param=field)
    assert not ApprovalRequest.objects.exists()


def test_it_rejects_missing_fields_and_bad_json(instance) -> None:
    _assert_error(
        instance.create({"tool": "t", "timeout": "1m"}), 400, "invalid_field", "arguments"
    )
    response = instance.client.post(
        f"{BASE}/requests", "{nope", content_type="application/json", HTTP_IDEMPOTENCY_KEY=key()
    )
    _assert_error(response, 400, "invalid_json")


def test_every_response_carries_a_request_id(instance, provisioner) -> None:
    responses = [
        instance.create(),
        instance.client.get(f"{BASE}/requests/{uuid.uuid4()}"),
        instance.client.get(f"{BASE}/requests/not-a-uuid"),
        bearer("nope").get(f"{BASE}/requests/{uuid.uuid4()}"),
        provisioner.get(f"{BASE}/instances/{instance.agent.code}"),
        provisioner.put(f"{BASE}/instances/{instance.agent.code}"),
    ]
    for response in responses:
        uuid.UUID(response["X-Request-ID"])
    assert responses[2].status_code == 404
    assert responses[5].status_code == 405


# --- Idempotency ------------------------------------------------------------------------------


def test_it_requires_an_idempotency_key(instance) -> None:
    response = instance.client.post(f"{BASE}/requests", REFUND, format="json")
    _assert_error(response, 400, "missing_idempotency_key", "Idempotency-Key")


def test_a_replay_returns_the_same_request_whatever_the_whitespace_and_key_order(instance) -> None:
    idempotency_key = key()
    first = instance.create(idempotency_key=idempotency_key)
    reordered = (
        '{ "timeout":"30m", "arguments": {"currency":"GBP","amount":4900,'
        '"payment_id":"payment_123"},\n "tool":"issue_refund"}'
    )
    replay = instance.client.post(
        f"{BASE}/requests",
        reordered,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key,
    )
    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    # The echo is the original submission, key order included.
    assert replay.content.decode().index('"payment_id"') < replay.content.decode().index(
        '"currency"'
    )
    assert ApprovalRequest.objects.count() == 1


def test_a_replay_of_a_terminal_request_returns_its_current_state(instance, reviewer) -> None:
    idempotency_key = key()
    created = instance.create(idempotency_key=idempotency_key).json()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=created["id"]), reviewer=reviewer
    )
    replay = instance.create(idempotency_key=idempotency_key)
    assert replay.status_code == 200
    assert replay.json()["status"] == "approved"
    again = instance.create(idempotency_key=idempotency_key)
    # Replaying does not extend the approval.
    assert again.json()["decision"]["expires_at"] == replay.json()["decision"]["expires_at"]


def test_a_key_reused_with_different_fields_conflicts_and_changes_nothing(instance) -> None:
    idempotency_key = key()
    first = instance.create(idempotency_key=idempotency_key).json()
    changed = {**REFUND, "arguments": {**REFUND["arguments"], "amount": 4901}}
    _assert_error(
        instance.create(changed, idempotency_key=idempotency_key), 409, "idempotency_conflict"
    )
    # 4900 and 4900.0 are different JSON; so is a changed timeout.
    _assert_error(
        instance.create({**REFUND, "timeout": "31m"}, idempotency_key=idempotency_key),
        409,
        "idempotency_conflict",
    )
    stored = ApprovalRequest.objects.get(code=first["id"])
    assert stored.arguments["amount"] == 4900


def test_a_key_reused_with_another_context_conflicts_naming_it(instance) -> None:
    # The whole context counts for a replay, a session id too: AAP binds a key to all the fields.
    # (A resubmission under a new key is compared more leniently: test_9_changed_arguments.)
    context = {"runtime": "claude-code", "session_id": "session-1", "cwd": "/home/chris/shop"}
    idempotency_key = key()
    first = instance.create({**REFUND, "context": context}, idempotency_key=idempotency_key)
    for changed in ({"cwd": "/home/chris/other"}, {"session_id": "session-2"}):
        error = _assert_error(
            instance.create(
                {**REFUND, "context": {**context, **changed}}, idempotency_key=idempotency_key
            ),
            409,
            "idempotency_conflict",
        )
        assert error["message"].endswith("its context differs.")
    timeout = instance.create(
        {**REFUND, "timeout": "31m", "context": context}, idempotency_key=idempotency_key
    )
    assert _assert_error(timeout, 409, "idempotency_conflict")["message"].endswith(
        "its timeout differs."
    )
    # The same context in another key order is the same request.
    replay = instance.create(
        {**REFUND, "context": dict(reversed(context.items()))}, idempotency_key=idempotency_key
    )
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert ApprovalRequest.objects.count() == 1


def test_keys_are_scoped_to_the_instance(provisioner, instance) -> None:
    other = provision(provisioner, instance_name="other")
    idempotency_key = key()
    assert instance.create(idempotency_key=idempotency_key).status_code == 201
    assert other.create(idempotency_key=idempotency_key).status_code == 201


# --- Retrieve, long poll, cancel -------------------------------------------------------------


def test_an_instance_sees_only_its_own_requests(provisioner, instance) -> None:
    created = instance.create().json()
    other = provision(provisioner, instance_name="other")
    _assert_error(other.client.get(f"{BASE}/requests/{created['id']}"), 404, "not_found")
    _assert_error(other.client.delete(f"{BASE}/requests/{created['id']}"), 404, "not_found")


@pytest.mark.django_db(transaction=True)
@override_settings(APPROVAL_LONG_POLL_MAX_SECONDS=1)
def test_a_long_poll_is_capped_and_returns_pending(instance) -> None:
    created = instance.create().json()
    response = instance.client.get(f"{BASE}/requests/{created['id']}", {"wait": "24h"})
    assert response.status_code == 200
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize("wait", ["0s", "5", "1d", "-1s", ""])
def test_it_rejects_a_malformed_wait(instance, wait) -> None:
    created = instance.create().json()
    response = instance.client.get(f"{BASE}/requests/{created['id']}", {"wait": wait})
    _assert_error(response, 400, "invalid_field", "wait")


def test_cancel_returns_the_cancelled_request_and_is_repeatable(instance) -> None:
    created = instance.create().json()
    first = instance.client.delete(f"{BASE}/requests/{created['id']}")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["decision"]["status"] == "cancelled"
    assert "expires_at" not in first.json()["decision"]
    second = instance.client.delete(f"{BASE}/requests/{created['id']}")
    assert second.status_code == 200
    assert second.json() == first.json()


def test_cancelling_a_decided_request_conflicts_and_keeps_the_outcome(instance, reviewer) -> None:
    created = instance.create().json()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=created["id"]), reviewer=reviewer
    )
    _assert_error(
        instance.client.delete(f"{BASE}/requests/{created['id']}"), 409, "already_terminal"
    )
    assert ApprovalRequest.objects.get(code=created["id"]).status == Status.APPROVED


# --- Instances --------------------------------------------------------------------------------


def test_provisioning_returns_an_instance_and_a_working_credential(provisioner) -> None:
    response = provisioner.post(
        f"{BASE}/instances", {"instance_name": "codex-1"}, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201
    body = response.json()
    assert body["instance"] == {"id": body["instance"]["id"], "name": "codex-1"}
    assert set(body["credential"]) <= {"token", "expires_at"}
    assert (
        bearer(body["credential"]["token"])
        .post(f"{BASE}/requests", REFUND, format="json", HTTP_IDEMPOTENCY_KEY=key())
        .status_code
        == 201
    )


def test_provisioning_with_an_empty_body_assigns_a_name(provisioner) -> None:
    response = provisioner.post(f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=key())
    assert response.status_code == 201
    assert response.json()["instance"]["name"]


def test_a_provisioning_replay_returns_the_same_instance_and_credential(provisioner) -> None:
    idempotency_key = key()
    send = lambda body: provisioner.post(  # noqa: E731
        f"{BASE}/instances", body, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    first = send({"instance_name": "codex-1"})
    replay = send({"instance_name": "codex-1"})
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json() == first.json()
    assert AgentCredential.objects.count() == 1
    _assert_error(send({"instance_name": "codex-2"}), 409, "idempotency_conflict")


def _derived_from_secret_key(operation: InstanceOperation) -> str:
    # How credentials used to be made: an HMAC of the provisioning record under SECRET_KEY.
    message = f"aap-provision:{operation.pk}:{operation.provisioner_id}:{operation.idempotency_key}"
    digest = hmac.new(settings.SECRET_KEY.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_an_instance_credential_cannot_be_rebuilt_from_secret_key_and_the_database(
    provisioner,
) -> None:
    # The attack: a database copy plus SECRET_KEY. Nothing stored may reproduce a credential.
    idempotency_key = key()
    token = provisioner.post(
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    ).json()["credential"]["token"]
    # aac_<hex prefix>_<secret>: the secret is everything after the second "_" (a urlsafe secret
    # may itself contain "_", so splitting from the right could leave a short, common tail).
    secret = token.split("_", 2)[2]
    assert len(secret) >= 20
    operation = InstanceOperation.objects.get(idempotency_key=idempotency_key)
    assert secret != _derived_from_secret_key(operation)
    stored = [
        *InstanceOperation.objects.values_list().get(),
        *AgentCredential.objects.values_list().get(),
    ]
    assert not any(secret in str(value) for value in stored)


def test_a_replay_with_another_provisioner_token_gets_no_usable_credential(
    provisioner_token,
) -> None:
    # Only the token the instance was provisioned with recomputes its credential; another
    # provisioner's key space is separate, so the same key creates a separate instance.
    idempotency_key = key()
    first = bearer(provisioner_token).post(
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    other = provisioner_token_create(name="other").plaintext
    second = bearer(other).post(
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["instance"]["id"] != second.json()["instance"]["id"]


def test_a_replay_of_a_provisioning_from_before_keyed_credentials_replaces_its_credential(
    provisioner,
) -> None:
    # Records made when credentials were derived from SECRET_KEY have no salt: that secret is no
    # longer computed, so a replay revokes it and issues one keyed to the provisioner token.
    idempotency_key = key()
    send = lambda: provisioner.post(  # noqa: E731
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    created = send().json()
    operation = InstanceOperation.objects.get(idempotency_key=idempotency_key)
    legacy_secret = _derived_from_secret_key(operation)
    AgentCredential.objects.filter(pk=operation.credential.pk).update(
        secret_digest=hashlib.sha256(legacy_secret.encode()).hexdigest()
    )
    InstanceOperation.objects.filter(pk=operation.pk).update(credential_salt="")
    legacy_token = f"aac_{operation.credential.prefix}_{legacy_secret}"
    create = lambda token: bearer(token).post(  # noqa: E731
        f"{BASE}/requests", REFUND, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert create(legacy_token).status_code == 201  # existing instances keep working

    first_replay, second_replay = send(), send()
    assert first_replay.status_code == second_replay.status_code == 200
    assert first_replay.json()["instance"] == created["instance"]
    reissued = first_replay.json()["credential"]["token"]
    assert second_replay.json()["credential"]["token"] == reissued
    _assert_error(create(legacy_token), 401, "invalid_credential")
    assert create(reissued).status_code == 201
    assert AgentCredential.objects.filter(revoked_at__isnull=True).count() == 1


def test_a_provisioning_replay_after_deletion_does_not_recreate_it(provisioner) -> None:
    idempotency_key = key()
    created = provisioner.post(
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    ).json()
    assert provisioner.delete(f"{BASE}/instances/{created['instance']['id']}").status_code == 204
    replay = provisioner.post(
        f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    _assert_error(replay, 409, "instance_deleted")


def test_get_and_patch_an_instance(provisioner, instance) -> None:
    url = f"{BASE}/instances/{instance.agent.code}"
    assert provisioner.get(url).json() == {
        "id": str(instance.agent.code),
        "name": "codex-chris-laptop",
    }
    patch_key = key()
    renamed = provisioner.patch(
        url, {"instance_name": "codex-chris-desktop"}, format="json", HTTP_IDEMPOTENCY_KEY=patch_key
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "codex-chris-desktop"
    later = provisioner.patch(
        url, {"instance_name": "later"}, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert later.json()["name"] == "later"
    # A replay of the first update returns its original response and does not undo the later one.
    replay = provisioner.patch(
        url, {"instance_name": "codex-chris-desktop"}, format="json", HTTP_IDEMPOTENCY_KEY=patch_key
    )
    assert replay.status_code == 200
    assert replay.json()["name"] == "codex-chris-desktop"
    assert provisioner.get(url).json()["name"] == "later"
    conflicting = provisioner.patch(
        url, {"instance_name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=patch_key
    )
    _assert_error(conflicting, 409, "idempotency_conflict")
    _assert_error(
        provisioner.patch(url, {}, format="json", HTTP_IDEMPOTENCY_KEY=key()), 400, "invalid_field"
    )
    _assert_error(
        provisioner.patch(url, {"instance_name": "y"}, format="json"),
        400,
        "missing_idempotency_key",
    )


def test_delete_revokes_cancels_pending_keeps_terminal_and_is_repeatable(
    provisioner, instance, reviewer
) -> None:
    pending = instance.create().json()
    decided = instance.create().json()
    approval_request_approve(
        approval=ApprovalRequest.objects.get(code=decided["id"]), reviewer=reviewer
    )
    url = f"{BASE}/instances/{instance.agent.code}"

    response = provisioner.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert provisioner.delete(url).status_code == 204
    _assert_error(provisioner.get(url), 404, "not_found")
    _assert_error(
        provisioner.patch(url, {"instance_name": "z"}, format="json", HTTP_IDEMPOTENCY_KEY=key()),
        404,
        "not_found",
    )
    assert ApprovalRequest.objects.get(code=pending["id"]).status == Status.CANCELLED
    assert ApprovalRequest.objects.get(code=decided["id"]).status == Status.APPROVED
    # The credential is revoked: reads and new requests get 401.
    _assert_error(
        instance.client.get(f"{BASE}/requests/{decided['id']}"), 401, "invalid_credential"
    )
    _assert_error(instance.create(), 401, "invalid_credential")


def test_unknown_or_foreign_instances_are_not_found(provisioner, instance) -> None:
    from agents.services import provisioner_token_create

    stranger = bearer(provisioner_token_create(name="stranger").plaintext)
    url = f"{BASE}/instances/{instance.agent.code}"
    _assert_error(stranger.get(url), 404, "not_found")
    _assert_error(stranger.delete(url), 404, "not_found")
    _assert_error(provisioner.delete(f"{BASE}/instances/{uuid.uuid4()}"), 404, "not_found")


# --- Identity and errors ----------------------------------------------------------------------


def test_identity_comes_only_from_the_credential(provisioner, instance) -> None:
    _assert_error(
        provisioner.post(f"{BASE}/requests", REFUND, format="json", HTTP_IDEMPOTENCY_KEY=key()),
        403,
        "permission_denied",
    )
    _assert_error(
        instance.client.post(f"{BASE}/instances", {}, format="json", HTTP_IDEMPOTENCY_KEY=key()),
        403,
        "permission_denied",
    )
    _assert_error(
        instance.client.get(f"{BASE}/instances/{instance.agent.code}"), 403, "permission_denied"
    )
    anonymous = bearer("")
    anonymous.credentials()
    _assert_error(
        anonymous.post(f"{BASE}/requests", REFUND, format="json", HTTP_IDEMPOTENCY_KEY=key()),
        401,
        "invalid_credential",
    )
    _assert_error(
        bearer("aac_nope_nope").get(f"{BASE}/requests/{uuid.uuid4()}"), 401, "invalid_credential"
    )


def test_a_native_agent_is_an_aap_instance_too(db) -> None:
    _, token = agent_with_token(name="native-bot")
    response = bearer(token).post(
        f"{BASE}/requests", REFUND, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201
    assert ApprovalRequest.objects.get().source == "aap"


def test_errors_never_contain_the_credential(instance) -> None:
    secret_part = instance.token.split("_", 2)[2]
    response = bearer(instance.token + "x").get(f"{BASE}/requests/{uuid.uuid4()}")
    assert response.status_code == 401
    assert secret_part not in response.content.decode()
    assert "Traceback" not in json.dumps(response.json())


@pytest.mark.parametrize(
    ("failure", "status", "error_type"),
    [
        (RuntimeError("boom at 0xdeadbeef"), 500, "internal"),
        (DatabaseError("db down"), 503, "dependency"),
    ],
)
def test_unexpected_failures_use_the_envelope_without_internals(
    failure, status, error_type
) -> None:
    from types import SimpleNamespace

    from agents.aap.api import exception_handler

    request_id = str(uuid.uuid4())
    response = exception_handler(failure, {"request": SimpleNamespace(request_id=request_id)})
    assert response.status_code == status
    error = response.data["error"]
    assert error["type"] == error_type
    assert error["request_id"] == request_id
    assert str(failure) not in error["message"]


def test_request_bodies_are_bounded(instance, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = instance.create({**REFUND, "arguments": {"blob": "x" * 2000}})
    _assert_error(response, 413, "payload_too_large")
    assert not ApprovalRequest.objects.exists()


# --- The agent APIs' input limits (console.api_limits), the same as the native API's -----------


def test_a_body_over_the_agent_api_cap_is_refused_413_as_on_the_native_api(instance) -> None:
    # 300 KiB spread over fields each within the field cap: only the body cap can refuse it.
    arguments = {f"part{n}": "x" * 30_000 for n in range(10)}
    error = _assert_error(
        instance.create({**REFUND, "arguments": arguments}), 413, "payload_too_large"
    )
    assert str(256 * 1024) in error["message"]
    assert not ApprovalRequest.objects.exists()


def _nested_request(depth: int) -> str:
    nested = "[" * depth + "]" * depth
    return '{"tool": "t", "timeout": "1m", "arguments": {"a": ' + nested + "}}"


@pytest.mark.parametrize("depth", [64, 200, 500, 990, 5000])
def test_arguments_nested_too_deeply_are_refused_400(instance, depth: int) -> None:
    # The body's own object is level 1, arguments level 2: 64 nested arrays inside go past 64.
    response = instance.client.post(
        f"{BASE}/requests",
        _nested_request(depth),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    error = _assert_error(response, 400, "invalid_json")
    assert "nested deeper than 64 levels" in error["message"]
    assert not ApprovalRequest.objects.exists()


def test_arguments_nested_up_to_the_limit_are_accepted(instance) -> None:
    response = instance.client.post(
        f"{BASE}/requests",
        _nested_request(62),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("field", ["arguments", "context"])
def test_a_field_over_the_field_cap_is_refused_400_naming_it(instance, field: str) -> None:
    response = instance.create({**REFUND, field: {"blob": "x" * 200_000}})
    error = _assert_error(response, 400, "too_large", param=field)
    assert str(64 * 1024) in error["message"]
    assert not ApprovalRequest.objects.exists()


def test_a_field_at_the_field_cap_is_accepted(instance) -> None:
    blob = "x" * (64 * 1024 - len('{"blob":""}'))
    assert instance.create({**REFUND, "arguments": {"blob": blob}}).status_code == 201


@pytest.mark.parametrize(
    "timeout", ["702608525057228493965349s", "99999999999999999h", "1" * 5000 + "m"]
)
def test_a_huge_timeout_is_shortened_not_refused(instance, settings, timeout: str) -> None:
    response = instance.create({**REFUND, "timeout": timeout})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["timeout"] == timeout  # the requested window, echoed as sent
    approval = ApprovalRequest.objects.get()
    assert approval.timeout_seconds == settings.APPROVAL_MAX_TIMEOUT_SECONDS
    granted = approval.deadline_at - approval.created_at
    assert granted.total_seconds() == pytest.approx(settings.APPROVAL_MAX_TIMEOUT_SECONDS, abs=1)


@pytest.mark.parametrize("timeout", ["0s", "10", "5d", "-1s", "1.5h", "01s", "1s1s"])
def test_a_timeout_that_is_not_a_duration_is_still_refused(instance, timeout: str) -> None:
    _assert_error(instance.create({**REFUND, "timeout": timeout}), 400, "invalid_field", "timeout")


def test_a_timeout_over_the_field_cap_is_refused(instance) -> None:
    response = instance.create({**REFUND, "timeout": "1" * (64 * 1024 + 1) + "s"})
    _assert_error(response, 400, "too_large", "timeout")


def test_a_huge_wait_is_capped_not_refused(instance) -> None:
    created = instance.create().json()
    url = f"{BASE}/requests/{created['id']}"
    assert instance.client.delete(url).status_code == 200  # terminal: the wait answers at once
    for wait in ["7494250792344h", "1" * 5000 + "s"]:
        response = instance.client.get(url, {"wait": wait})
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "cancelled"
    _assert_error(instance.client.get(url, {"wait": "soon"}), 400, "invalid_field", "wait")
