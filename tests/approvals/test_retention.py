"""Data lifecycle: decided requests past retention are archived (verifiable offline), then
removed; the audit chain verifies as before; nothing undecided or recent is touched."""

import gzip
import json
import threading
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from agents.models import Run, RunStatus
from approvals import retention
from approvals.audit.signed_lines import SignedLinesWriter
from approvals.models import ApprovalEvent, ApprovalRequest, AuditRecord, Decision
from approvals.retention import (
    approvals_archive_decided,
    approvals_archive_past_retention,
    archive_verify,
)
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory
from tests.races import raised, run_at_once
from tests.waits import wait_until

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


def _decided_long_ago(count: int, **fields: object) -> list[ApprovalRequest]:
    reviewer = UserFactory(is_staff=True)
    decided = [
        approval_request_approve(approval=ApprovalRequestFactory(**fields), reviewer=reviewer)
        for _ in range(count)
    ]
    long_ago = timezone.now() - timedelta(days=100)
    ApprovalRequest.objects.update(decided_at=long_ago, created_at=long_ago)
    return decided


def _archived(paths: list[Path], model: str) -> list[int]:
    return [
        entry["data"]["pk"]
        for path in paths
        for entry in _entries(path)
        if entry["kind"] == "row" and entry["data"]["model"] == model
    ]


def _two_runs_at_once(paths: list[Path]) -> None:
    before = timezone.now() - timedelta(days=30)
    results = run_at_once(
        [partial(approvals_archive_decided, before=before, path=path) for path in paths]
    )
    assert not raised(results), results
    assert all(result.archived.get("approvals.approvalrequest") for result in results)
    for path in paths:
        archive_verify(path)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers of PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_archive_each_request_once(tmp_path: Path, monkeypatch) -> None:
    decided = _decided_long_ago(12)
    monkeypatch.setattr(retention, "BATCH_SIZE", 3)
    # Each run holds its first batch on disk until the other has one too: both are mid-batch
    # at once, whichever thread the scheduler favours.
    both_mid_batch = threading.Barrier(2, timeout=20)
    real_make_durable = SignedLinesWriter.make_durable
    waited: set[int] = set()

    def make_durable_alongside_the_other(writer: SignedLinesWriter) -> None:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_mid_batch.wait()
        real_make_durable(writer)

    monkeypatch.setattr(SignedLinesWriter, "make_durable", make_durable_alongside_the_other)
    paths = [tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"]

    _two_runs_at_once(paths)

    # Split between the two, none in both: a request is in exactly one archive.
    held = _archived(paths, "approvals.approvalrequest")
    assert sorted(held) == sorted(approval.pk for approval in decided)
    assert not ApprovalRequest.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers of PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_run_split_between_two_concurrent_batches_is_archived(
    tmp_path: Path, monkeypatch
) -> None:
    agent = AgentFactory()
    run = Run.objects.create(
        agent=agent, name="closed", status=RunStatus.COMPLETED, closed_at=timezone.now()
    )
    _decided_long_ago(6, agent=agent, run=run)
    monkeypatch.setattr(retention, "BATCH_SIZE", 3)  # half the run's requests in each batch
    real_runs_emptied_by = retention._runs_emptied_by
    backends: dict[int, int] = {}
    counted: set[int] = set()

    def other_counted_or_waits_for_a_lock() -> bool:
        [other] = [pid for ident, pid in backends.items() if ident != threading.get_ident()] or [0]
        if other in counted:
            return True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                [other],
            )
            return cursor.fetchone() is not None

    def counted_alongside_the_other(batch: list[ApprovalRequest]) -> list[Run]:
        backends[threading.get_ident()] = connection.connection.info.backend_pid
        emptied = real_runs_emptied_by(batch)
        counted.add(backends[threading.get_ident()])
        # Neither deletes its half before the other has counted the run's requests, unless the
        # other waits on this one's lock to count them.
        wait_until(other_counted_or_waits_for_a_lock, what="the other run counting")
        return emptied

    monkeypatch.setattr(retention, "_runs_emptied_by", counted_alongside_the_other)
    paths = [tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"]

    _two_runs_at_once(paths)

    assert not ApprovalRequest.objects.exists()
    assert not Run.objects.exists()
    assert _archived(paths, "agents.run") == [run.pk]
