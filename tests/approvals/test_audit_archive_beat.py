"""Beat's audit archive (AUDIT_ARCHIVE_AFTER_DAYS): off unless set, refused at start-up below
AUDIT_ARCHIVE_MIN_AGE_DAYS, the command's prune into ARCHIVE_DIR when on, and one archive however
many workers run it at once."""

import logging
from pathlib import Path

import pytest
from celery import Celery
from django.core.management import call_command

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
    assert audit_archive_past_age() is None
    assert AuditRecord.objects.count() == 9 and list(tmp_path.iterdir()) == []

    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    result = audit_archive_past_age()
    assert result is not None
    assert (result.checkpoint.first_sequence, result.checkpoint.sequence) == (1, 6)
    assert not AuditRecord.objects.filter(sequence__lte=6).exists()
    [archive] = tmp_path.iterdir()
    assert archive.name.startswith("audit-1-to-6-") and archive.name.endswith(".jsonl.gz")
    assert "matches its prune checkpoint" in _verify_archive(archive, capsys)
    pruned = AuditRecord.objects.get(action="audit.pruned")
    assert pruned.actor_label == "beat: audit archive"
    assert audit_chain_verify().ok
    assert audit_archive_past_age() is None  # nothing left that old: no empty files
    assert list(tmp_path.iterdir()) == [archive]


def test_two_runs_at_once_archive_and_prune_once(
    year_old_trail, tmp_path: Path, settings, monkeypatch, caplog, capsys
) -> None:
    settings.ARCHIVE_DIR = tmp_path
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 200
    real_verify = prune_module.audit_archive_verify
    other: list[object] = []

    def another_worker_meanwhile(path: Path) -> object:
        # This run has written its archive; another worker's run, same cut, commits first.
        monkeypatch.setattr(prune_module, "audit_archive_verify", real_verify)
        other.append(audit_archive_past_age())
        return real_verify(path)

    monkeypatch.setattr(prune_module, "audit_archive_verify", another_worker_meanwhile)
    with caplog.at_level(logging.ERROR, logger="approvals.tasks"):
        archive_old_audit_records()

    assert other and other[0] is not None
    assert "nothing archived or deleted: another prune ran meanwhile" in caplog.text
    assert list(AuditPruneCheckpoint.objects.values_list("sequence", flat=True)) == [6]
    assert AuditRecord.objects.filter(action="audit.pruned").count() == 1
    # One archive: the losing run removed its own, whose records the winner's holds.
    [archive] = tmp_path.iterdir()
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
