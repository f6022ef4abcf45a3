"""The audit trail against someone with database access: wiping it, rewinding its head,
re-signing what they changed, cutting its end off. And keys: signing, rotation, the unkeyed
prefix of an upgraded install, anchors, and exports checked offline."""

import hashlib
import hmac
import json
import re
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from approvals.audit.keys import GENESIS_HASH, HASHED_FIELDS, _canonical_time, audit_key_id
from approvals.audit.trail import AuditAction, audit_record
from approvals.audit.verification import audit_chain_verify
from approvals.models import AuditChainHead, AuditRecord
from approvals.services import Submission, approval_request_approve, approval_request_create
from console.hot_statements import retried_if_prepared_stale
from tests.approvals.audit_tamper import tamper, wipe_refused
from tests.approvals.test_audit_export import _body
from tests.factories import AgentFactory, UserFactory
from tests.schema_changes import AUDIT_HEAD, columns_retyped

pytestmark = pytest.mark.django_db

ON_POSTGRES = connection.vendor == "postgresql"
KEY = "k" * 64
NEW_KEY = "n" * 64


def _chain(count: int) -> list[AuditRecord]:
    return [
        audit_record(action=AuditAction.CONFIG_CHANGED, object_id=str(number))
        for number in range(count)
    ]


def _refused(sql: str, params: list[object] | None = None) -> None:
    with (
        wipe_refused(),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def _canonical(record: AuditRecord) -> bytes:
    fields = (
        HASHED_FIELDS if record.key_id else [name for name in HASHED_FIELDS if name != "key_id"]
    )
    content = {name: getattr(record, name) for name in fields}
    content["created_at"] = _canonical_time(record.created_at)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _unkeyed_digest(record: AuditRecord) -> str:
    """SHA-256 over the content, as records were hashed before keying (and as a forger can)."""
    return hashlib.sha256(_canonical(record)).hexdigest()


def _rewrite_from(records: list[AuditRecord], index: int, **changes: object) -> None:
    """The owner's rewrite: change one record, recompute every hash after it without the key
    (unkeyed, the only hash they can compute), and move the head to match."""
    prev_hash = records[index - 1].hash if index else GENESIS_HASH
    for number, record in enumerate(records[index:]):
        if number == 0:
            for name, value in changes.items():
                setattr(record, name, value)
        record.key_id, record.prev_hash = "", prev_hash
        record.hash = prev_hash = _unkeyed_digest(record)
        tamper(
            "UPDATE approvals_auditrecord SET action = %s, object_id = %s, key_id = '', "
            "prev_hash = %s, hash = %s WHERE id = %s",
            [record.action, record.object_id, record.prev_hash, record.hash, record.pk],
        )
    tamper(
        "UPDATE approvals_auditchainhead SET last_hash = %s WHERE id = 1",
        [records[-1].hash],
    )


# --- What the database refuses ---------------------------------------------------------------


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite has no TRUNCATE")
@pytest.mark.parametrize(
    "table", ["approvals_auditrecord", "approvals_auditchainhead", "approvals_auditprunecheckpoint"]
)
def test_it_refuses_truncating_the_trail(table: str) -> None:
    _chain(2)
    _refused(f"TRUNCATE {table}")
    _refused(f"TRUNCATE {table} CASCADE")
    assert AuditRecord.objects.count() == 2
    assert AuditChainHead.objects.get().last_sequence == 2


def test_it_refuses_deleting_the_chain_head() -> None:
    _chain(2)
    _refused("DELETE FROM approvals_auditchainhead")
    assert AuditChainHead.objects.get().last_sequence == 2


def test_it_refuses_moving_the_head_backwards() -> None:
    records = _chain(3)
    _refused(
        "UPDATE approvals_auditchainhead SET last_sequence = %s, last_hash = %s",
        [records[0].sequence, records[0].hash],
    )
    _refused(
        "UPDATE approvals_auditchainhead SET last_sequence = 0, last_hash = %s",
        [GENESIS_HASH],
    )
    assert AuditChainHead.objects.get().last_sequence == 3


def test_it_refuses_a_head_that_does_not_name_the_newest_record() -> None:
    _chain(3)
    _refused("UPDATE approvals_auditchainhead SET last_hash = %s", ["f" * 64])
    _refused("UPDATE approvals_auditchainhead SET last_sequence = 7")
    _refused("UPDATE approvals_auditchainhead SET keyed = %s", [False])
    _refused(
        "INSERT INTO approvals_auditchainhead (id, last_sequence, last_hash, keyed) "
        "VALUES (2, 0, %s, %s)",
        [GENESIS_HASH, False],
    )
    assert audit_chain_verify().ok


def test_it_keeps_the_guards_after_every_migration() -> None:
    # On SQLite a migration that rebuilds an audit table drops its triggers with it.
    with connection.cursor() as cursor:
        if ON_POSTGRES:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
                "('approvals_auditrecord'::regclass, 'approvals_auditchainhead'::regclass, "
                "'approvals_auditprunecheckpoint'::regclass)"
            )
            expected = {
                "approvals_auditrecord_append_only",
                "approvals_auditrecord_no_truncate",
                "approvals_auditchainhead_no_truncate",
                "approvals_auditchainhead_forward_only",
                "approvals_auditprunecheckpoint_append_only",
                "approvals_auditprunecheckpoint_no_truncate",
            }
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            expected = {
                "approvals_auditrecord_no_update",
                "approvals_auditrecord_no_delete",
                "approvals_auditchainhead_no_delete",
                "approvals_auditchainhead_forward_only",
                "approvals_auditchainhead_starts_at_the_end",
                "approvals_auditprunecheckpoint_no_update",
                "approvals_auditprunecheckpoint_no_delete",
            }
        assert expected <= {name for (name,) in cursor.fetchall()}


@pytest.mark.skipif(not ON_POSTGRES, reason="PL/pgSQL keeps its plans per session")
@pytest.mark.django_db(transaction=True)
def test_its_guard_holds_on_a_connection_older_than_a_column_change_of_the_head() -> None:
    # A rolling deploy's migration changes a column of the head while pooled connections that
    # already ran its guard (PL/pgSQL plans each expression once per session) keep serving.
    _chain(2)
    with columns_retyped(AUDIT_HEAD):
        # The head's lock, prepared before, is refused as stale and the append runs again
        # (console.hot_statements); then the guard checks the move, as on a new connection.
        [appended] = retried_if_prepared_stale(lambda: _chain(1))

        assert AuditChainHead.objects.get().last_sequence == appended.sequence == 3
        assert audit_chain_verify().ok
        # And it still refuses, as itself: not with a type error of its own.
        with (
            wipe_refused(),
            pytest.raises(DatabaseError) as refused,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "UPDATE approvals_auditchainhead SET last_sequence = 0, last_hash = %s",
                [GENESIS_HASH],
            )
        assert isinstance(refused.value.__cause__, psycopg.errors.InsufficientPrivilege)


@pytest.mark.skipif(not ON_POSTGRES, reason="PL/pgSQL keeps its plans per session")
def test_its_guard_reads_the_head_whole() -> None:
    # A field of NEW or OLD read in the guard is planned with its column's type, per session:
    # a migration that replaces the guard must keep reading them whole (migration 0027).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'approvals_auditchainhead_guard'"
        )
        (source,) = cursor.fetchone()
    assert re.findall(r"\b(?:NEW|OLD)\s*\.", source, flags=re.IGNORECASE) == []
    assert "to_jsonb(NEW)" in source


# --- What verification catches ---------------------------------------------------------------


def _decided_request() -> None:
    agent = AgentFactory()
    submission = Submission(tool="issue_refund", arguments={"amount": 10}, timeout="30m")
    approval, _ = approval_request_create(agent=agent, idempotency_key="k", submission=submission)
    approval_request_approve(approval=approval, reviewer=UserFactory())


def test_it_fails_when_the_trail_was_wiped_but_requests_exist() -> None:
    _decided_request()
    assert audit_chain_verify().ok
    tamper("DELETE FROM approvals_auditrecord")
    tamper("DELETE FROM approvals_auditchainhead")
    result = audit_chain_verify()
    assert result.first_break is not None
    assert "wiped" in result.first_break.reason
    # A head put back at the start does not make it look like a fresh console either.
    tamper(
        "INSERT INTO approvals_auditchainhead (id, last_sequence, last_hash, keyed) "
        "VALUES (1, 0, %s, %s)",
        [GENESIS_HASH, False],
    )
    assert not audit_chain_verify().ok
    with pytest.raises(CommandError, match="wiped"):
        call_command("audit_verify")


def test_an_empty_trail_verifies_on_a_console_with_no_history() -> None:
    assert audit_chain_verify().ok


def test_it_signs_records_with_the_key_outside_the_database(settings) -> None:
    settings.AUDIT_HMAC_KEYS = [KEY]
    record = audit_record(action=AuditAction.CONFIG_CHANGED, object_id="x")
    assert record.key_id == audit_key_id(KEY.encode())
    assert record.hash == hmac.new(KEY.encode(), _canonical(record), "sha256").hexdigest()
    assert KEY not in str(list(AuditRecord.objects.values())) + str(
        list(AuditChainHead.objects.values())
    )


def test_it_catches_a_record_rewritten_and_rehashed_without_the_key() -> None:
    records = _chain(4)
    # The database owner's attack: disable the guards, edit, recompute every hash after it.
    _rewrite_from(records, 1, action=AuditAction.REQUEST_APPROVED, object_id="forged")
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == records[1].sequence
    assert "unkeyed" in result.first_break.reason


def test_it_catches_a_whole_chain_rewritten_without_the_key() -> None:
    records = _chain(3)
    _rewrite_from(records, 0, object_id="forged")
    result = audit_chain_verify()
    assert result.first_break is not None
    assert "no record is keyed" in result.first_break.reason


def test_it_catches_a_record_signed_with_a_guessed_key(settings) -> None:
    settings.AUDIT_HMAC_KEYS = [KEY]
    records = _chain(3)
    forged = records[2]
    forged.object_id = "forged"
    # Keyed as the console's records are, but with a key the console was never given.
    forged.hash = hmac.new(b"g" * 64, _canonical(forged), "sha256").hexdigest()
    tamper(
        "UPDATE approvals_auditrecord SET object_id = %s, hash = %s WHERE id = %s",
        [forged.object_id, forged.hash, forged.pk],
    )
    tamper("UPDATE approvals_auditchainhead SET last_hash = %s WHERE id = 1", [forged.hash])
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == forged.sequence
    assert "edited" in result.first_break.reason


def test_it_verifies_records_signed_with_retired_keys_after_rotation(settings) -> None:
    settings.AUDIT_HMAC_KEYS = [KEY]
    old = audit_record(action=AuditAction.CONFIG_CHANGED, object_id="old")
    settings.AUDIT_HMAC_KEYS = [KEY, NEW_KEY]  # rotated: the last one signs
    new = audit_record(action=AuditAction.CONFIG_CHANGED, object_id="new")
    assert (old.key_id, new.key_id) == (
        audit_key_id(KEY.encode()),
        audit_key_id(NEW_KEY.encode()),
    )
    assert audit_chain_verify().ok
    settings.AUDIT_HMAC_KEYS = [NEW_KEY]  # the retired key thrown away: old records unprovable
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == old.sequence
    assert "does not have" in result.first_break.reason


def _unkeyed_install(count: int) -> list[AuditRecord]:
    """Records as an install from before keying has them: SHA-256, no key id, a head at the end."""
    records, prev_hash = [], GENESIS_HASH
    for number in range(1, count + 1):
        record = AuditRecord(
            sequence=number,
            created_at=timezone.now(),
            action=AuditAction.CONFIG_CHANGED,
            actor_type="system",
            actor_label="console",
            object_id=f"legacy-{number}",
            prev_hash=prev_hash,
        )
        record.hash = prev_hash = _unkeyed_digest(record)
        records.append(record)
    AuditRecord.objects.bulk_create(records)
    AuditChainHead.objects.create(pk=1, last_sequence=count, last_hash=prev_hash)
    return records


def test_it_accepts_an_upgraded_installs_unkeyed_records_up_to_the_transition() -> None:
    legacy = _unkeyed_install(3)
    result = audit_chain_verify()
    assert result.first_break is not None  # not one keyed record yet: nothing proves them
    record = audit_record(action=AuditAction.CONFIG_CHANGED, object_id="first keyed")

    transition = AuditRecord.objects.get(sequence=4)
    assert transition.action == AuditAction.AUDIT_KEYED
    assert transition.context == {"unkeyed_records": 3}
    assert transition.prev_hash == legacy[-1].hash
    assert transition.key_id and record.key_id
    assert record.sequence == 5
    assert audit_chain_verify().ok

    # After the transition, an unkeyed record is one written without the key.
    forged = AuditRecord(
        sequence=6,
        created_at=record.created_at,
        action=AuditAction.REQUEST_APPROVED,
        actor_type="reviewer",
        actor_label="mallory",
        prev_hash=record.hash,
    )
    forged.hash = _unkeyed_digest(forged)
    forged.save()
    tamper(
        "UPDATE approvals_auditchainhead SET last_sequence = 6, last_hash = %s WHERE id = 1",
        [forged.hash],
    )
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.sequence == 6
    assert "unkeyed" in result.first_break.reason


# --- Anchors kept outside the database, and exports checked offline --------------------------


def _anchor(capsys) -> str:
    call_command("audit_anchor")
    return capsys.readouterr().out.strip()


def test_the_anchor_command_prints_the_newest_record(capsys) -> None:
    with pytest.raises(CommandError, match="empty"):
        call_command("audit_anchor")
    records = _chain(3)
    assert _anchor(capsys) == f"{records[-1].sequence}:{records[-1].hash}"
    call_command("audit_verify", anchor=[f"{records[-1].sequence}:{records[-1].hash}"])


def test_an_anchor_catches_records_cut_off_with_the_head_moved_back(capsys) -> None:
    records = _chain(5)
    anchor = _anchor(capsys)
    # The owner's cut: no key needed, and the chain that is left is intact.
    tamper("DELETE FROM approvals_auditrecord WHERE sequence > %s", [records[2].sequence])
    tamper(
        "UPDATE approvals_auditchainhead SET last_sequence = %s, last_hash = %s WHERE id = 1",
        [records[2].sequence, records[2].hash],
    )
    call_command("audit_verify")
    with pytest.raises(CommandError, match="cut off the end"):
        call_command("audit_verify", anchor=[anchor])


def test_an_anchor_catches_a_chain_rewritten_from_the_start(capsys, settings) -> None:
    records = _chain(3)
    anchor = f"{records[1].sequence}:{records[1].hash}"
    # Someone who has the key (or rebuilt the chain under a key of their own) rewrites it all.
    tamper("DELETE FROM approvals_auditrecord")
    tamper("DELETE FROM approvals_auditchainhead")
    _chain(4)
    call_command("audit_verify")
    with pytest.raises(CommandError, match="rewritten"):
        call_command("audit_verify", anchor=[anchor])
    with pytest.raises(CommandError, match="SEQ:HASH"):
        call_command("audit_verify", anchor=["3:abc"])


def _export(client, path: Path) -> None:
    response = client.get("/api/v1/audit/records")
    assert response.status_code == 200
    path.write_text(_body(response))


def test_an_export_verifies_offline_with_the_key_and_an_anchor(
    client, tmp_path, settings, capsys
) -> None:
    settings.AUDIT_HMAC_KEYS = [KEY]
    client.force_login(UserFactory(username="auditor", is_staff=True))
    _chain(3)
    anchor = _anchor(capsys)
    exported = tmp_path / "audit.jsonl"
    _export(client, exported)

    call_command("audit_verify", file=exported, anchor=[anchor])
    assert "Export intact: 5 records" in capsys.readouterr().out  # + sign-in + the export

    with pytest.raises(CommandError, match="does not hold the anchor"):
        call_command("audit_verify", file=exported, anchor=[f"9:{'a' * 64}"])
    lines = exported.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["object_id"] = "forged"
    (tmp_path / "edited.jsonl").write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]))
    with pytest.raises(CommandError, match=r"#2.*edited"):
        call_command("audit_verify", file=tmp_path / "edited.jsonl")
    settings.AUDIT_HMAC_KEYS = [NEW_KEY]  # someone without the key cannot vouch for it
    with pytest.raises(CommandError, match="does not have"):
        call_command("audit_verify", file=exported)


def test_a_filtered_export_verifies_from_its_first_record(client, tmp_path, capsys) -> None:
    client.force_login(UserFactory(username="auditor", is_staff=True))
    records = _chain(4)
    response = client.get("/api/v1/audit/records", {"since": records[2].created_at.isoformat()})
    exported = tmp_path / "since.jsonl"
    exported.write_text(_body(response))
    first = json.loads(exported.read_text().splitlines()[0])
    assert first["sequence"] > 1
    call_command("audit_verify", file=exported)
    assert "Export intact" in capsys.readouterr().out


def test_an_export_rewritten_without_the_key_or_malformed_fails(tmp_path) -> None:
    records = _chain(2)
    rows = []
    prev_hash = GENESIS_HASH
    for record in records:
        record.object_id, record.key_id, record.prev_hash = "forged", "", prev_hash
        record.hash = prev_hash = _unkeyed_digest(record)
        row = {name: getattr(record, name) for name in (*HASHED_FIELDS, "hash")}
        row["created_at"] = _canonical_time(record.created_at)
        rows.append(json.dumps(row))
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join(rows))
    with pytest.raises(CommandError, match="no record is keyed"):
        call_command("audit_verify", file=forged)
    non_ascii = json.loads(rows[0])
    non_ascii["hash"] = "é" * 64
    forged.write_text(json.dumps(non_ascii))
    with pytest.raises(CommandError, match="edited"):
        call_command("audit_verify", file=forged)
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text('{"sequence": 1}\n')
    with pytest.raises(CommandError, match="line 1: not an exported audit record"):
        call_command("audit_verify", file=malformed)
