"""Data lifecycle: decided requests past retention are archived (verifiable offline), then
removed; the audit chain verifies as before; nothing undecided or recent is touched."""

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from approvals.models import ApprovalEvent, ApprovalRequest, AuditRecord, Decision
from approvals.retention import approvals_archive_past_retention
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _submit(agent_client, key: str) -> ApprovalRequest:
    response = agent_client.post(
        "/api/v1/requests",
        {"tool": "send_email", "arguments": {"to": f"{key}@example.test"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.content
    return ApprovalRequest.objects.get(code=response.json()["id"])


@pytest.fixture
def history(agent_client):
    reviewer = UserFactory(username="rita", is_staff=True)
    old = approval_request_approve(approval=_submit(agent_client, "old"), reviewer=reviewer)
    recent = approval_request_deny(
        approval=_submit(agent_client, "recent"), reviewer=reviewer, reason="no"
    )
    pending = _submit(agent_client, "pending")
    long_ago = timezone.now() - timedelta(days=100)
    ApprovalRequest.objects.filter(pk=old.pk).update(decided_at=long_ago, created_at=long_ago)
    return old, recent, pending


def _entries(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as lines:
        return [json.loads(line) for line in lines]


def test_it_archives_then_removes_only_what_was_decided_before_the_date(
    history, tmp_path: Path, capsys
) -> None:
    old, recent, pending = history
    old_events = ApprovalEvent.objects.filter(approval=old).count()
    assert old_events >= 2 and Decision.objects.filter(approval=old).exists()
    audit_about_old = AuditRecord.objects.filter(object_id=str(old.code)).count()
    assert audit_about_old >= 1
    archive = tmp_path / "archive.jsonl.gz"
    before = (timezone.now() - timedelta(days=30)).date().isoformat()

    call_command("archive_decided", "--before", before, "--output", str(archive))

    assert not ApprovalRequest.objects.filter(pk=old.pk).exists()
    assert not ApprovalEvent.objects.filter(approval_id=old.pk).exists()
    assert not Decision.objects.filter(approval_id=old.pk).exists()
    assert set(ApprovalRequest.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    entries = _entries(archive)
    rows = [entry["data"] for entry in entries if entry["kind"] == "row"]
    assert {"pk": old.pk, "model": "approvals.approvalrequest"} in [
        {"pk": row["pk"], "model": row["model"]} for row in rows
    ]
    assert sum(row["model"] == "approvals.approvalevent" for row in rows) == old_events
    assert sum(row["model"] == "approvals.decision" for row in rows) == 1
    assert sum(entry["kind"] == "audit" for entry in entries) == audit_about_old
    # Kept, not purged: the live chain verifies, and holds the archive's anchor.
    assert AuditRecord.objects.filter(object_id=str(old.code)).count() == audit_about_old
    anchor = next(entry["data"]["anchor"] for entry in entries if entry["kind"] == "anchor")
    call_command("audit_verify", "--anchor", anchor)
    capsys.readouterr()
    call_command("archive_verify", str(archive))
    assert "Archive intact" in capsys.readouterr().out


def test_it_refuses_an_archive_edited_or_cut_short(history, tmp_path: Path) -> None:
    archive = tmp_path / "archive.jsonl.gz"
    call_command(
        "archive_decided", "--before", timezone.now().isoformat(), "--output", str(archive)
    )
    lines = gzip.decompress(archive.read_bytes()).splitlines(keepends=True)

    edited = tmp_path / "edited.jsonl.gz"
    edited.write_bytes(gzip.compress(b"".join(lines).replace(b"old@example.test", b"x@evil.test")))
    with pytest.raises(CommandError, match="SHA-256 does not match"):
        call_command("archive_verify", str(edited))

    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"".join(lines[:-1])))
    with pytest.raises(CommandError, match="cut short"):
        call_command("archive_verify", str(cut))

    with pytest.raises(CommandError, match="never overwritten"):
        call_command("archive_decided", "--before", "2000-01-01", "--output", str(archive))


def test_beat_archives_past_the_retention_setting_and_nothing_when_it_is_off(
    history, tmp_path: Path, settings
) -> None:
    old, recent, pending = history
    settings.ARCHIVE_DIR = tmp_path
    settings.RETENTION_DAYS = 0
    assert approvals_archive_past_retention() is None
    assert ApprovalRequest.objects.filter(pk=old.pk).exists()

    settings.RETENTION_DAYS = 30
    result = approvals_archive_past_retention()
    assert result is not None and result.path.parent == tmp_path
    assert not ApprovalRequest.objects.filter(pk=old.pk).exists()
    assert ApprovalRequest.objects.filter(pk__in=[recent.pk, pending.pk]).count() == 2
    assert approvals_archive_past_retention() is None  # nothing left that old: no empty files
    assert list(tmp_path.iterdir()) == [result.path]
