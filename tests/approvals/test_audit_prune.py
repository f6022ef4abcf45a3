"""Archiving and pruning the audit trail (`manage.py audit_archive`): the archive holds exactly
what is deleted, the live chain verifies from the prune checkpoint, the database still refuses
every other delete, and anchors older than the checkpoint are checked in the archive."""

import gzip
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from approvals.audit import prune as prune_module
from approvals.audit import signed_lines
from approvals.audit.archive import audit_archive_verify
from approvals.audit.guards import audit_prune_allowed
from approvals.audit.trail import AuditAction, audit_record
from approvals.audit.verification import audit_chain_verify
from approvals.models import AuditChainHead, AuditPruneCheckpoint, AuditRecord
from tests.approvals.audit_tamper import tamper, wipe_refused
from tests.approvals.test_audit_guards import _refused

pytestmark = pytest.mark.django_db

ON_POSTGRES = connection.vendor == "postgresql"
LONG_AGO = timezone.now() - timedelta(days=400)


def _chain(count: int, *, days_ago: int = 0) -> list[AuditRecord]:
    at = timezone.now() - timedelta(days=days_ago)
    with mock.patch.object(timezone, "now", return_value=at):
        return [
            audit_record(action=AuditAction.CONFIG_CHANGED, object_id=f"{days_ago}-{number}")
            for number in range(count)
        ]


@pytest.fixture
def year_old_trail() -> tuple[list[AuditRecord], list[AuditRecord]]:
    """Six records from a year ago, then three from today."""
    return _chain(6, days_ago=365), _chain(3)


def _archive(path: Path, before: str) -> str:
    out = mock.MagicMock()
    call_command("audit_archive", "--before", before, "--out", str(path), stdout=out)
    return "".join(str(call.args[0]) for call in out.write.call_args_list)


def _verify(capsys, *options: str) -> str:
    capsys.readouterr()
    call_command("audit_verify", *options)
    return capsys.readouterr().out


def _cut_date() -> str:
    return (timezone.now() - timedelta(days=200)).date().isoformat()


def test_it_archives_then_prunes_and_the_chain_verifies_from_the_checkpoint(
    year_old_trail, tmp_path: Path, capsys
) -> None:
    old, recent = year_old_trail
    archive = tmp_path / "audit-2025.jsonl.gz"

    said = _archive(archive, _cut_date())

    # The newest old record is the cut; everything from it on before stays.
    assert "#1 to #6" in said
    assert not AuditRecord.objects.filter(sequence__lte=old[-1].sequence).exists()
    assert AuditRecord.objects.filter(sequence__in=[r.sequence for r in recent]).count() == 3
    checkpoint = AuditPruneCheckpoint.objects.get()
    assert (checkpoint.sequence, checkpoint.hash, checkpoint.records) == (6, old[-1].hash, 6)
    pruned = AuditRecord.objects.get(action=AuditAction.AUDIT_PRUNED)
    assert pruned.sequence == recent[-1].sequence + 1
    assert pruned.context["archive_sha256"] == checkpoint.archive_sha256

    assert "from #7 (after the prune checkpoint)" in _verify(capsys)
    # The archive holds exactly the deleted records, verified on its own and against the database.
    with gzip.open(archive, "rt") as lines:
        held = [json.loads(line)["data"] for line in lines if '"kind": "audit"' in line]
    assert [row["hash"] for row in held] == [record.hash for record in old]
    assert "matches its prune checkpoint" in _verify(capsys, "--archive", str(archive))
    # Appending goes on as before.
    audit_record(action=AuditAction.CONFIG_CHANGED, object_id="after")
    assert audit_chain_verify().ok


def test_a_second_prune_starts_where_the_first_ended(
    year_old_trail, tmp_path, capsys, settings
) -> None:
    old, _ = year_old_trail
    first, second = tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"
    _archive(first, "3")
    settings.AUDIT_ARCHIVE_MIN_AGE_DAYS = 0
    _archive(second, "9")  # the first prune's audit.pruned record, #10, stays
    checkpoints = list(AuditPruneCheckpoint.objects.values_list("first_sequence", "sequence"))
    assert checkpoints == [(1, 3), (4, 9)]
    assert audit_archive_verify(second).after.hash == old[2].hash
    out = _verify(capsys, "--archive", str(first), "--archive", str(second))
    assert out.count("matches its prune checkpoint") == 2


def test_tampering_with_a_remaining_record_after_a_prune_is_detected(
    year_old_trail, tmp_path
) -> None:
    _, recent = year_old_trail
    _archive(tmp_path / "a.jsonl.gz", _cut_date())
    tamper("UPDATE approvals_auditrecord SET object_id = 'forged' WHERE id = %s", [recent[1].pk])
    with pytest.raises(CommandError, match=rf"#{recent[1].sequence}.*edited"):
        call_command("audit_verify")


def test_records_removed_outside_the_prune_are_detected(year_old_trail, tmp_path) -> None:
    _, recent = year_old_trail
    _archive(tmp_path / "a.jsonl.gz", _cut_date())
    # The first remaining record gone: the next one does not link to the checkpoint.
    tamper("DELETE FROM approvals_auditrecord WHERE id = %s", [recent[0].pk])
    with pytest.raises(CommandError, match=rf"expected record #{recent[0].sequence}"):
        call_command("audit_verify")


def test_a_start_cut_off_with_a_forged_checkpoint_is_detected(year_old_trail) -> None:
    old, _ = year_old_trail
    # Someone cuts the oldest records without audit_archive and writes the checkpoint the live
    # chain would need: no signed audit.pruned record vouches for it.
    tamper("DELETE FROM approvals_auditrecord WHERE sequence <= %s", [old[-1].sequence])
    AuditPruneCheckpoint.objects.create(
        sequence=old[-1].sequence,
        hash=old[-1].hash,
        keyed=True,
        first_sequence=1,
        records=len(old),
        archive_name="none",
        archive_sha256="0" * 64,
        created_at=timezone.now(),
    )
    result = audit_chain_verify()
    assert result.first_break is not None
    assert "not vouched for" in result.first_break.reason


def test_the_database_still_refuses_deleting_records_directly(year_old_trail, tmp_path) -> None:
    old, recent = year_old_trail
    _refused("DELETE FROM approvals_auditrecord WHERE id = %s", [old[0].pk])
    # The prune's opening alone, without a checkpoint at its cut, opens nothing.
    with (
        wipe_refused(),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        audit_prune_allowed(through_sequence=2),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM approvals_auditrecord WHERE sequence = 1")
    _archive(tmp_path / "a.jsonl.gz", _cut_date())
    _refused("DELETE FROM approvals_auditrecord WHERE id = %s", [recent[0].pk])
    checkpoint = AuditPruneCheckpoint.objects.get()
    # With a checkpoint, still nothing after its cut, nor the chain's newest record.
    with (
        wipe_refused(),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        audit_prune_allowed(through_sequence=checkpoint.sequence),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM approvals_auditrecord WHERE id = %s", [recent[0].pk])
    _refused("DELETE FROM approvals_auditprunecheckpoint", [])
    _refused("UPDATE approvals_auditprunecheckpoint SET sequence = 1", [])
    assert AuditRecord.objects.filter(pk__in=[r.pk for r in recent]).count() == 3
    assert audit_chain_verify().ok


def test_the_prune_cannot_delete_the_newest_record(tmp_path) -> None:
    records = _chain(3, days_ago=365)
    newest = records[-1].sequence
    with pytest.raises(CommandError, match="newest record stays"):
        call_command("audit_archive", "--before", str(newest), "--out", str(tmp_path / "x"))
    # Nor in the database: a checkpoint at the newest record opens no way to delete it.
    with wipe_refused(), pytest.raises(DatabaseError), transaction.atomic():
        AuditPruneCheckpoint.objects.create(
            sequence=newest,
            hash=records[-1].hash,
            keyed=True,
            first_sequence=1,
            records=3,
            archive_name="x",
            archive_sha256="0" * 64,
            created_at=timezone.now(),
        )
        with audit_prune_allowed(through_sequence=newest), connection.cursor() as cursor:
            cursor.execute("DELETE FROM approvals_auditrecord")
    assert AuditRecord.objects.count() == 3


def _nothing_pruned(records: int) -> None:
    assert AuditRecord.objects.count() == records
    assert not AuditPruneCheckpoint.objects.exists()
    assert audit_chain_verify().ok


def test_a_failed_archive_write_deletes_nothing(year_old_trail, tmp_path, monkeypatch) -> None:
    archive = tmp_path / "a.jsonl.gz"

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(signed_lines.os, "fsync", disk_full)
    with pytest.raises(CommandError, match=r"No space left on device.*nothing was deleted"):
        _archive(archive, _cut_date())
    _nothing_pruned(9)
    assert not archive.exists()  # no half archive left to be mistaken for a whole one


def test_an_archive_that_does_not_read_back_deletes_nothing(
    year_old_trail, tmp_path, monkeypatch
) -> None:
    def truncated_on_disk(path: Path) -> object:
        data = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
        path.write_bytes(gzip.compress(b"".join(data[:-2])))
        return real_verify(path)

    real_verify = prune_module.audit_archive_verify
    monkeypatch.setattr(prune_module, "audit_archive_verify", truncated_on_disk)
    with pytest.raises(CommandError, match=r"does not verify after writing.*nothing was deleted"):
        _archive(tmp_path / "a.jsonl.gz", _cut_date())
    _nothing_pruned(9)


def _rewrite(path: Path, edit, *, reclose: bool) -> Path:
    lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    edit(lines)
    body = [json.dumps(line, sort_keys=True).encode() + b"\n" for line in lines[:-1]]
    if reclose:
        closing = {"sha256": hashlib.sha256(b"".join(body)).hexdigest()}
        lines[-1] = {"kind": "end", "data": closing}
    edited = path.with_name("edited.jsonl.gz")
    edited.write_bytes(gzip.compress(b"".join(body) + json.dumps(lines[-1]).encode() + b"\n"))
    return edited


def test_an_edited_archive_fails_verification(year_old_trail, tmp_path) -> None:
    archive = tmp_path / "a.jsonl.gz"
    _archive(archive, _cut_date())

    def forge(lines: list[dict]) -> None:
        lines[2]["data"]["object_id"] = "forged"

    def relabel(lines: list[dict]) -> None:
        lines[0]["data"]["writer"] = "someone else"

    # Edited, checksum left alone: the closing SHA-256 catches it.
    with pytest.raises(CommandError, match="closing SHA-256 does not match"):
        call_command("audit_verify", "--archive", str(_rewrite(archive, relabel, reclose=False)))
    # A record edited (re-closed or not): its HMAC catches it.
    with pytest.raises(CommandError, match=r"record #2: .*edited"):
        call_command("audit_verify", "--archive", str(_rewrite(archive, forge, reclose=False)))
    with pytest.raises(CommandError, match=r"record #2: .*edited"):
        call_command("audit_verify", "--archive", str(_rewrite(archive, forge, reclose=True)))

    def drop_last(lines: list[dict]) -> None:
        del lines[-3]  # the cut's record, before the anchor and the end

    with pytest.raises(CommandError, match="missing from its end"):
        call_command("audit_verify", "--archive", str(_rewrite(archive, drop_last, reclose=True)))

    # Offline, with no database, archive_verify checks the file on its own.
    call_command("archive_verify", str(archive), stdout=mock.MagicMock())
    with pytest.raises(CommandError, match=r"record #2: .*edited"):
        call_command("archive_verify", str(_rewrite(archive, forge, reclose=True)))
    # Whole and signed, but not the file the checkpoint recorded.
    with pytest.raises(CommandError, match=r"does not match the database.*SHA-256 differs"):
        call_command("audit_verify", "--archive", str(_rewrite(archive, relabel, reclose=True)))


def test_an_anchor_older_than_the_checkpoint_is_checked_in_the_archive(
    year_old_trail, tmp_path, capsys
) -> None:
    old, recent = year_old_trail
    archive = tmp_path / "a.jsonl.gz"
    _archive(archive, _cut_date())
    anchor = f"{old[1].sequence}:{old[1].hash}"

    # Without the archive: said plainly, not a false failure.
    out = _verify(capsys, "--anchor", anchor)
    assert f"anchor #{old[1].sequence} lies in archived history" in out
    assert "NOT checked" in out and str(archive) in out
    # With it: checked there.
    out = _verify(capsys, "--anchor", anchor, "--archive", str(archive))
    assert "checked in its archive" in out
    with pytest.raises(CommandError, match="rewritten"):
        call_command(
            "audit_verify", "--anchor", f"{old[1].sequence}:{'a' * 64}", "--archive", str(archive)
        )
    # The cut itself is the checkpoint; later anchors are in the live chain as before.
    assert "checked against it" in _verify(capsys, "--anchor", f"{old[-1].sequence}:{old[-1].hash}")
    with pytest.raises(CommandError, match="rewritten"):
        call_command("audit_verify", "--anchor", f"{old[-1].sequence}:{'b' * 64}")
    _verify(capsys, "--anchor", f"{recent[0].sequence}:{recent[0].hash}")


def test_it_refuses_bad_input_and_deletes_nothing(tmp_path, settings) -> None:
    _chain(4, days_ago=365)
    _chain(2, days_ago=10)
    existing = tmp_path / "exists.jsonl.gz"
    existing.write_bytes(b"keep me")
    refusals = {
        "the following arguments are required: --out": ["--before", "2"],
        "not a date": ["--before", "last-year", "--out", str(tmp_path / "x")],
        "younger than AUDIT_ARCHIVE_MIN_AGE_DAYS": ["--before", "5", "--out", str(tmp_path / "x")],
        "less than AUDIT_ARCHIVE_MIN_AGE_DAYS": [
            "--before",
            (timezone.now() - timedelta(days=5)).date().isoformat(),
            "--out",
            str(tmp_path / "x"),
        ],
        "sequences start at #1": ["--before", "0", "--out", str(tmp_path / "x")],
        "exists: an archive is never overwritten": ["--before", "2", "--out", str(existing)],
        "no record before": ["--before", "2001-01-01", "--out", str(tmp_path / "x")],
    }
    for message, arguments in refusals.items():
        with pytest.raises(CommandError, match=message):
            call_command("audit_archive", *arguments)
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "x").exists()
    _nothing_pruned(6)
    # The minimum age is the operator's: lowered, the young records may go too (but the newest).
    settings.AUDIT_ARCHIVE_MIN_AGE_DAYS = 0
    _archive(tmp_path / "young.jsonl.gz", "5")
    with pytest.raises(CommandError, match="archived and pruned already"):
        call_command("audit_archive", "--before", "5", "--out", str(tmp_path / "y"))


def test_appends_during_a_prune_keep_the_chain_whole(year_old_trail, tmp_path, monkeypatch) -> None:
    real_verify = prune_module.audit_archive_verify

    def appended_meanwhile(path: Path) -> object:
        # Between writing the archive and deleting: the head moves on, the cut does not.
        _chain(2)
        return real_verify(path)

    monkeypatch.setattr(prune_module, "audit_archive_verify", appended_meanwhile)
    _archive(tmp_path / "a.jsonl.gz", _cut_date())
    assert AuditChainHead.objects.get().last_sequence == 6 + 3 + 2 + 1
    assert audit_chain_verify().ok


def test_a_prune_that_lost_a_race_to_another_deletes_nothing(
    year_old_trail, tmp_path, monkeypatch
) -> None:
    real_verify = prune_module.audit_archive_verify

    def other_prune_first(path: Path) -> object:
        # Into another directory: prunes into the same one take turns.
        monkeypatch.setattr(prune_module, "audit_archive_verify", real_verify)
        _archive(tmp_path / "elsewhere" / "other.jsonl.gz", "4")
        return real_verify(path)

    monkeypatch.setattr(prune_module, "audit_archive_verify", other_prune_first)
    with pytest.raises(CommandError, match="nothing was deleted"):
        _archive(tmp_path / "mine.jsonl.gz", _cut_date())
    assert list(AuditPruneCheckpoint.objects.values_list("sequence", flat=True)) == [4]
    # Its records are still live: kept, the file would archive #1 to #4 a second time.
    assert list(tmp_path.glob("mine*")) == []
    assert AuditRecord.objects.filter(sequence__in=[5, 6]).count() == 2
    assert audit_chain_verify().ok
