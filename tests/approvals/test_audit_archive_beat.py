"""Beat's audit archive (AUDIT_ARCHIVE_AFTER_DAYS): off unless set, refused at start-up below
AUDIT_ARCHIVE_MIN_AGE_DAYS, the command's prune into ARCHIVE_DIR when on, and one archive however
many workers run it at once."""

import logging
from pathlib import Path

import pytest
from celery import Celery
from django.core.management import call_command
from django.db import connection

from approvals.audit import prune as prune_module
from approvals.audit.prune import audit_archive_past_age
from approvals.audit.verification import audit_chain_verify
from approvals.models import AuditPruneCheckpoint, AuditRecord
from approvals.tasks import archive_old_audit_records
from console.celery import _schedule_periodic_tasks
from tests.approvals.test_audit_prune import _chain
from tests.console.test_deploy_settings import _run as run_with_environment

pytestmark = pytest.mark.django_db


@pytest.fixture
def year_old_trail() -> None:
    """Six records from a year ago, then three from today."""
    _chain(6, days_ago=365)
    _chain(3)


def _verify_archive(path: Path, capsys) -> str:
    capsys.readouterr()
    call_command("audit_verify", "--archive", str(path))
    return capsys.readouterr().out


def test_beat_archives_and_prunes_past_the_setting_and_nothing_when_it_is_off(
    year_old_trail, tmp_path: Path, settings, capsys
) -> None:
    settings.ARCHIVE_DIR = tmp_path
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 0
    assert audit_archive_past_age() == []
    assert AuditRecord.objects.count() == 9 and list(tmp_path.iterdir()) == []

    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    [result] = audit_archive_past_age()
    assert (result.checkpoint.first_sequence, result.checkpoint.sequence) == (1, 6)
    assert not AuditRecord.objects.filter(sequence__lte=6).exists()
    [archive] = _files(tmp_path)
    assert archive.name.startswith("audit-1-to-6-") and archive.name.endswith(".jsonl.gz")
    assert "matches its prune checkpoint" in _verify_archive(archive, capsys)
    pruned = AuditRecord.objects.get(action="audit.pruned")
    assert pruned.actor_label == "beat: audit archive"
    assert audit_chain_verify().ok
    assert audit_archive_past_age() == []  # nothing left that old: no empty files
    assert _files(tmp_path) == [archive]


def _files(directory: Path) -> list[Path]:
    """The archives in `directory`, and pending files a stopped prune left (not the lock)."""
    return sorted(directory.glob("audit-*"))


def test_two_runs_at_once_archive_and_prune_once(
    year_old_trail, tmp_path: Path, settings, monkeypatch, caplog, capsys
) -> None:
    settings.ARCHIVE_DIR = tmp_path
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    real_verify = prune_module.audit_archive_verify
    other: list[object] = []

    def another_worker_meanwhile(path: Path) -> object:
        # This run has written its archive; another worker's run starts on the same directory.
        monkeypatch.setattr(prune_module, "audit_archive_verify", real_verify)
        other.append(audit_archive_past_age())
        return real_verify(path)

    monkeypatch.setattr(prune_module, "audit_archive_verify", another_worker_meanwhile)
    with caplog.at_level(logging.INFO, logger="approvals.audit.prune"):
        archive_old_audit_records()

    # The other left the directory to this one: it wrote nothing, and did not touch this
    # one's pending archive.
    assert other == [[]]
    assert "another audit archive is being written into" in caplog.text
    assert list(AuditPruneCheckpoint.objects.values_list("sequence", flat=True)) == [6]
    assert AuditRecord.objects.filter(action="audit.pruned").count() == 1
    [archive] = _files(tmp_path)
    assert "matches its prune checkpoint" in _verify_archive(archive, capsys)
    assert audit_chain_verify().ok


def _scheduled(settings_days: int, settings) -> dict[str, dict[str, object]]:
    settings.AUDIT_ARCHIVE_AFTER_DAYS = settings_days
    app = Celery("schedule-only", set_as_current=False)
    _schedule_periodic_tasks(app)
    return dict(app.conf.beat_schedule)


def test_beat_schedules_the_audit_archive_only_when_it_is_set(settings) -> None:
    assert "archive and prune old audit records" not in _scheduled(0, settings)
    settings.AUDIT_ARCHIVE_SWEEP_SECONDS = 3600
    entry = _scheduled(365, settings)["archive and prune old audit records"]
    assert entry["task"] == "approvals.archive_old_audit_records"
    assert entry["schedule"] == 3600.0


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({"AUDIT_ARCHIVE_AFTER_DAYS": "30"}, "AUDIT_ARCHIVE_AFTER_DAYS=30 is below "
         "AUDIT_ARCHIVE_MIN_AGE_DAYS (90)"),
        ({"AUDIT_ARCHIVE_AFTER_DAYS": "100", "RETENTION_DAYS": "180"},
         "AUDIT_ARCHIVE_AFTER_DAYS=100 is below RETENTION_DAYS (180)"),
        ({"AUDIT_ARCHIVE_AFTER_DAYS": "365", "RETENTION_DAYS": "180"}, None),
    ],
)  # fmt: skip
def test_a_setting_below_the_minimum_age_stops_start_up(
    env: dict[str, str], refusal: str | None, tmp_path: Path
) -> None:
    # Settings are read at import: a fresh interpreter with the operator's environment.
    done = run_with_environment(["manage.py", "check"], env, tmp_path)
    if refusal is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert f"ImproperlyConfigured: {refusal}" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_a_backlog_larger_than_a_chunk_is_pruned_in_several_transactions(
    tmp_path: Path, settings, monkeypatch, capsys
) -> None:
    _chain(10, days_ago=365)
    _chain(3)
    settings.ARCHIVE_DIR = tmp_path
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    settings.AUDIT_ARCHIVE_CHUNK_RECORDS = 4
    real_prune = prune_module._prune
    deleted: list[int] = []

    def prune_in_its_own_transaction(archive, path, *, by):
        assert not connection.in_atomic_block  # so it commits on its own
        checkpoint = real_prune(archive, path, by=by)
        deleted.append(checkpoint.records)
        return checkpoint

    monkeypatch.setattr(prune_module, "_prune", prune_in_its_own_transaction)

    results = audit_archive_past_age()

    assert deleted == [4, 4, 2]
    ranges = AuditPruneCheckpoint.objects.order_by("sequence")
    assert list(ranges.values_list("first_sequence", "sequence")) == [(1, 4), (5, 8), (9, 10)]
    archives = _files(tmp_path)
    assert [result.archive.path for result in results] == archives
    for archive in archives:
        assert "matches its prune checkpoint" in _verify_archive(archive, capsys)
    capsys.readouterr()
    call_command("audit_verify")
    assert "Audit chain intact" in capsys.readouterr().out
    assert AuditRecord.objects.filter(action="audit.pruned").count() == 3


class Killed(BaseException):
    """The worker process dies here (SIGKILL, out of memory): no handler of ours runs."""


@pytest.fixture
def beat_on(year_old_trail, settings, tmp_path: Path) -> Path:
    """Beat archiving the year-old trail into ARCHIVE_DIR, returned."""
    settings.ARCHIVE_DIR = tmp_path
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    return tmp_path


def _beat_run_killed_at(monkeypatch, name: str, archive_dir: Path) -> list[Path]:
    """Beat's run, its process killed at prune_module.`name`: what it left in ARCHIVE_DIR."""

    def kill(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as crash:
        crash.setattr(prune_module, name, kill)
        with pytest.raises(Killed):
            audit_archive_past_age()
    return _files(archive_dir)


def test_a_prune_killed_before_its_commit_leaves_no_archive_and_the_next_run_cleans_up(
    beat_on: Path, monkeypatch, caplog, capsys
) -> None:
    # After the delete, before the commit (its closing append): the transaction rolls back.
    [left] = _beat_run_killed_at(monkeypatch, "audit_record", beat_on)

    assert AuditRecord.objects.count() == 9 and not AuditPruneCheckpoint.objects.exists()
    # No file by an archive's name holds records that are still in the database.
    assert left.name.endswith(".jsonl.gz.pending")

    with caplog.at_level(logging.WARNING, logger="approvals.audit.archive"):
        [result] = audit_archive_past_age()

    assert f"{left}: removed, its prune never committed" in caplog.text
    assert _files(beat_on) == [result.archive.path]
    assert "matches its prune checkpoint" in _verify_archive(result.archive.path, capsys)
    assert audit_chain_verify().ok


def test_a_prune_killed_after_its_commit_has_its_archive_named_by_the_next_run(
    beat_on: Path, monkeypatch, caplog, capsys
) -> None:
    [pending] = _beat_run_killed_at(monkeypatch, "audit_archive_publish", beat_on)
    checkpoint = AuditPruneCheckpoint.objects.get()
    # The only copy of the pruned records, under its pending name, and whole.
    assert "matches its prune checkpoint" in _verify_archive(pending, capsys)

    with caplog.at_level(logging.WARNING, logger="approvals.audit.archive"):
        assert audit_archive_past_age() == []  # nothing more to prune: it still settles

    archive = pending.with_name(pending.name.removesuffix(".pending"))
    assert checkpoint.archive_name == str(archive)
    assert _files(beat_on) == [archive]
    assert "its prune had committed" in caplog.text
    assert "matches its prune checkpoint" in _verify_archive(archive, capsys)


def test_a_damaged_pending_archive_a_checkpoint_names_is_kept(
    beat_on: Path, monkeypatch, caplog
) -> None:
    [pending] = _beat_run_killed_at(monkeypatch, "audit_archive_publish", beat_on)
    pending.write_bytes(pending.read_bytes()[:-20])

    with caplog.at_level(logging.WARNING, logger="approvals.audit.archive"):
        assert audit_archive_past_age() == []

    # It may be the only copy of pruned records: the operator decides.
    assert _files(beat_on) == [pending]
    assert "does not verify" in caplog.text and "kept" in caplog.text
