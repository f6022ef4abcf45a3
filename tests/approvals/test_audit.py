"""The audit trail: what gets recorded, and that the hash chain catches tampering."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from agents.services import agent_create_with_credential, credential_issue, credential_revoke
from approvals.audit import (
    AuditAction,
    AuditActor,
    audit_chain_verify,
    audit_keys,
    audit_record,
    audit_record_digest,
)
from approvals.models import AuditChainHead, AuditRecord
from approvals.services import (
    approval_request_approve,
    approval_request_cancel,
    approval_request_create,
    approval_request_deny,
    approval_requests_expire_overdue,
)
from tests.approvals.audit_tamper import tamper, wipe_refused
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory, build_submission

pytestmark = pytest.mark.django_db

ON_POSTGRES = connection.vendor == "postgresql"


def _chain(count: int) -> list[AuditRecord]:
    return [
        audit_record(
            action=AuditAction.CONFIG_CHANGED,
            object_type="tests.thing",
            object_id=str(number),
            before={"value": number},
            after={"value": number + 1},
        )
        for number in range(count)
    ]


def _raw(sql: str, params: list[object]) -> None:
    tamper(sql, params)


def test_it_records_a_submission_and_its_decision_in_one_chain() -> None:
    agent = AgentFactory(name="refund-bot")
    reviewer = UserFactory(username="rita")
    approval, _ = approval_request_create(
        agent=agent, idempotency_key="k1", submission=build_submission()
    )
    approval_request_approve(approval=approval, reviewer=reviewer, note="ok")

    submitted, held, approved = AuditRecord.objects.filter(object_id=str(approval.code))
    assert (held.action, held.after["outcome"]) == (AuditAction.POLICY_DECIDED, "hold")
    assert submitted.action == AuditAction.REQUEST_SUBMITTED
    assert (submitted.actor_type, submitted.actor_id, submitted.actor_label) == (
        "agent",
        str(agent.code),
        "refund-bot",
    )
    assert submitted.object_type == "approvals.approvalrequest"
    assert submitted.after["tool"] == "issue_refund"
    assert approved.action == AuditAction.REQUEST_APPROVED
    assert (approved.actor_type, approved.actor_label) == ("reviewer", "rita")
    assert approved.before == {"status": "pending"}
    assert approved.after["status"] == "approved"
    assert approved.after["note"] == "ok"
    assert (held.prev_hash, approved.prev_hash) == (submitted.hash, held.hash)
    assert approved.sequence == submitted.sequence + 2
    # Dates, floats and nested values read back from the database hash the same.
    assert audit_chain_verify().ok


def test_it_records_denial_cancellation_and_expiry_with_their_actors() -> None:
    reviewer = UserFactory(username="rita")
    denied = ApprovalRequestFactory()
    cancelled = ApprovalRequestFactory()
    overdue = ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))
    approval_request_deny(approval=denied, reviewer=reviewer, reason="Wrong customer.")
    approval_request_cancel(approval=cancelled, agent=cancelled.agent)
    approval_requests_expire_overdue()

    def only(approval) -> AuditRecord:
        return AuditRecord.objects.get(object_id=str(approval.code))

    assert only(denied).action == AuditAction.REQUEST_DENIED
    assert only(denied).after["note"] == "Wrong customer."
    assert only(cancelled).action == AuditAction.REQUEST_CANCELLED
    assert only(cancelled).actor_type == "agent"
    assert only(overdue).action == AuditAction.REQUEST_EXPIRED
    assert only(overdue).actor_type == "system"


def test_it_records_nothing_when_the_transition_loses() -> None:
    reviewer = UserFactory()
    approval = ApprovalRequestFactory()
    approval_request_approve(approval=approval, reviewer=reviewer)
    with pytest.raises(Exception, match="already approved"):
        approval_request_deny(approval=approval, reviewer=reviewer, reason="late")
    assert AuditRecord.objects.filter(object_id=str(approval.code)).count() == 1


def test_it_rolls_back_the_record_with_the_change_it_describes() -> None:
    _chain(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=AuditAction.CONFIG_CHANGED, object_id="rolled-back")
        raise RuntimeError("the change failed")
    assert not AuditRecord.objects.filter(object_id="rolled-back").exists()
    assert audit_chain_verify().ok
    # The next append continues from the last committed record, not the rolled-back one.
    audit_record(action=AuditAction.CONFIG_CHANGED, object_id="after")
    assert audit_chain_verify().ok


def test_it_records_credentials_issued_and_revoked_without_the_secret() -> None:
    admin_user = UserFactory(username="ops", is_staff=True)
    issued = agent_create_with_credential(name="mailer", actor=admin_user)
    extra = credential_issue(agent=issued.credential.agent, label="rotation", actor=admin_user)
    credential_revoke(credential=extra.credential, actor=admin_user)
    credential_revoke(credential=extra.credential, actor=admin_user)  # already revoked: no record

    actions = list(AuditRecord.objects.values_list("action", "actor_label", "object_id"))
    assert actions == [
        (AuditAction.AGENT_CREATED, "ops", str(issued.credential.agent.code)),
        (AuditAction.CREDENTIAL_ISSUED, "ops", issued.credential.prefix),
        (AuditAction.CREDENTIAL_ISSUED, "ops", extra.credential.prefix),
        (AuditAction.CREDENTIAL_REVOKED, "ops", extra.credential.prefix),
    ]
    # scheme_prefix_secret: the secret may itself contain "_" (urlsafe base64): split from the left
    secret = extra.plaintext.split("_", 2)[2]
    assert len(secret) >= 40
    for record in AuditRecord.objects.all():
        assert secret not in str(record.after) + str(record.context)
        assert extra.credential.secret_digest not in str(record.after)


def test_it_records_logins_but_not_single_failed_ones(client) -> None:
    # A failed sign-in is counted by the throttle (tests/console/test_login_throttle.py), not
    # appended to the chain: every wrong password used to queue on the chain head's lock.
    UserFactory(username="rita")
    from tests.factories import PASSWORD

    client.post("/accounts/login/", {"username": "rita", "password": "wrong"})
    client.post("/accounts/login/", {"username": "rita", "password": PASSWORD})

    [login] = AuditRecord.objects.all()
    assert login.action == AuditAction.AUTH_LOGIN
    assert (login.actor_type, login.actor_label) == ("reviewer", "rita")


def test_it_records_where_an_http_request_came_from(agent_client) -> None:
    response = agent_client.post(
        "/api/v1/requests",
        {"tool": "send_email", "arguments": {"to": "a@example.test"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-http",
        HTTP_USER_AGENT="refund-bot/1.0",
        HTTP_X_REQUEST_ID="req-abcdef-123",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 201
    record = AuditRecord.objects.get(action=AuditAction.REQUEST_SUBMITTED)
    assert record.ip_address == "203.0.113.9"
    assert record.user_agent == "refund-bot/1.0"
    assert record.request_id == "req-abcdef-123"
    assert response["X-Request-ID"] == "req-abcdef-123"
    assert audit_chain_verify().ok


def test_it_verifies_an_untouched_chain() -> None:
    _chain(5)
    result = audit_chain_verify(chunk_size=2)
    assert result.ok
    assert result.checked == 5
    assert result.last_hash == AuditChainHead.objects.get().last_hash


def test_it_catches_an_edited_record() -> None:
    records = _chain(5)
    _raw(
        "UPDATE approvals_auditrecord SET after = %s WHERE id = %s",
        ['{"value": 999}', records[2].pk],
    )
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == records[2].sequence
    assert "edited" in result.first_break.reason
    assert result.checked == 2


def test_it_catches_a_deleted_record() -> None:
    records = _chain(5)
    _raw("DELETE FROM approvals_auditrecord WHERE id = %s", [records[1].pk])
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == records[2].sequence
    assert "missing" in result.first_break.reason


def test_it_catches_records_cut_off_the_end() -> None:
    records = _chain(5)
    _raw("DELETE FROM approvals_auditrecord WHERE id = %s", [records[4].pk])
    result = audit_chain_verify()
    assert result.first_break is not None
    assert "end" in result.first_break.reason


def test_it_catches_an_inserted_record() -> None:
    records = _chain(5)
    # Make room after #2 and slip in a record that links correctly to #2: the record that
    # used to be #3 now carries a sequence its hash was not computed over.
    for record in reversed(records[2:]):
        _raw(
            "UPDATE approvals_auditrecord SET sequence = %s WHERE id = %s",
            [record.sequence + 1, record.pk],
        )
    forged = AuditRecord(
        sequence=records[2].sequence,
        created_at=records[2].created_at,
        action=AuditAction.REQUEST_APPROVED,
        actor_type="reviewer",
        actor_label="mallory",
        object_type="approvals.approvalrequest",
        object_id="forged",
        prev_hash=records[1].hash,
        # An insider with the key: the forgery links, its successor's hash does not.
        key_id=audit_keys().signing_id,
    )
    forged.hash = audit_record_digest(forged)
    forged.save()

    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.record_id == records[2].pk
    assert result.checked == 3  # the forgery itself links correctly; its successor does not


def test_the_command_names_the_first_broken_record_and_fails(capsys) -> None:
    records = _chain(3)
    call_command("audit_verify")
    assert "intact: 3 records" in capsys.readouterr().out

    _raw(
        "UPDATE approvals_auditrecord SET actor_label = %s WHERE id = %s",
        ["someone-else", records[1].pk],
    )
    with pytest.raises(CommandError, match=f"#{records[1].sequence}") as failure:
        call_command("audit_verify")
    assert failure.value.returncode == 1


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE approvals_auditrecord SET action = 'x' WHERE id = %s",
        "DELETE FROM approvals_auditrecord WHERE id = %s",
    ],
)
def test_the_database_refuses_updates_and_deletes(sql: str) -> None:
    record = audit_record(action=AuditAction.CONFIG_CHANGED, object_id="kept")
    with (
        wipe_refused(),
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [record.pk])
    assert AuditRecord.objects.get(pk=record.pk).action == AuditAction.CONFIG_CHANGED


def test_the_database_refuses_orm_deletes_too() -> None:
    audit_record(action=AuditAction.CONFIG_CHANGED)
    with wipe_refused(), pytest.raises(DatabaseError), transaction.atomic():
        AuditRecord.objects.all().delete()
    assert AuditRecord.objects.count() == 1


def test_the_actor_defaults_to_the_system() -> None:
    record = audit_record(action=AuditAction.REQUEST_EXPIRED)
    assert (record.actor_type, record.actor_label) == ("system", "console")
    assert AuditActor.of(None).type == "system"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_chain_under_concurrent_appends() -> None:
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for number in range(10):
                audit_record(action=AuditAction.CONFIG_CHANGED, object_id=f"{worker}-{number}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert AuditRecord.objects.count() == 40
    result = audit_chain_verify()
    assert result.ok, result.first_break
    assert result.checked == 40


def test_the_command_checks_anchors_kept_outside_the_database(capsys) -> None:
    records = _chain(3)
    call_command("audit_verify", anchor=[f"{records[1].sequence}:{records[1].hash}"])
    assert f"anchor 3:{records[2].hash}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="rewritten"):
        call_command("audit_verify", anchor=[f"{records[1].sequence}:{'f' * 64}"])
