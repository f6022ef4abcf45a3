"""`manage.py audit_archive` goes in chunks (AUDIT_ARCHIVE_CHUNK_RECORDS), as beat's run does:
each chunk its own archive and transaction, so a year of records never sits in one transaction,
and a run stopped between or inside chunks (Ctrl-C, a crash) keeps a verifiable chain and the
chunks it committed; the same command run again finishes the job, archiving each record once."""

import fcntl
import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from approvals.models import AuditPruneCheckpoint, AuditRecord
from tests.approvals.test_audit_prune import _chain, _cut_date
from tests.console.test_shutdown import database_url_for_subprocesses
from tests.waits import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

OLD_RECORDS = 10


@pytest.fixture
def backlog(settings) -> None:
    """Ten records from a year ago, three from today; chunks of four records."""
    _chain(OLD_RECORDS, days_ago=365)
    _chain(3)
    settings.AUDIT_ARCHIVE_CHUNK_RECORDS = 4


def _run(out: Path, capsys) -> str:
    capsys.readouterr()
    call_command("audit_archive", "--before", _cut_date(), "--out", str(out))
    return capsys.readouterr().out


def _archives(directory: Path) -> list[Path]:
    """The archives in `directory` by their own names (not pending files, not the lock)."""
    return sorted(directory.glob("audit-2025*.jsonl.gz"))


def _archived_sequences(archives: list[Path]) -> list[int]:
    sequences = []
    for archive in archives:
        with gzip.open(archive, "rt") as lines:
            entries = (json.loads(line) for line in lines)
            sequences += [e["data"]["sequence"] for e in entries if e["kind"] == "audit"]
    return sequences


def _assert_whole(directory: Path, capsys) -> None:
    """Every old record archived exactly once, gone from the database; each archive matches its
    checkpoint; the live chain verifies from the newest one."""
    archives = _archives(directory)
    assert sorted(_archived_sequences(archives)) == list(range(1, OLD_RECORDS + 1))
    assert not AuditRecord.objects.filter(sequence__lte=OLD_RECORDS).exists()
    assert AuditPruneCheckpoint.objects.order_by("-sequence").first().sequence == OLD_RECORDS
    assert list(directory.glob("*.pending")) == []
    capsys.readouterr()
    call_command("audit_verify", *[f"--archive={archive}" for archive in archives])
    said = capsys.readouterr().out
    assert said.count("matches its prune checkpoint") == len(archives)
    assert "Audit chain intact" in said


def test_a_backlog_larger_than_a_chunk_is_pruned_chunk_by_chunk(
    backlog, tmp_path: Path, capsys
) -> None:
    said = _run(tmp_path / "audit-2025.jsonl.gz", capsys)

    ranges = AuditPruneCheckpoint.objects.order_by("sequence")
    assert list(ranges.values_list("first_sequence", "sequence")) == [(1, 4), (5, 8), (9, 10)]
    assert [path.name for path in _archives(tmp_path)] == [
        "audit-2025-1-to-4.jsonl.gz",
        "audit-2025-5-to-8.jsonl.gz",
        "audit-2025-9-to-10.jsonl.gz",
    ]
    # A line as each chunk commits, then the sum.
    assert "[1/3] Archived and pruned 4 audit records, #1 to #4, to " in said
    assert "[3/3] Archived and pruned 2 audit records, #9 to #10, to " in said
    assert "Archived and pruned 10 audit records, #1 to #10, in 3 archives" in said
    assert AuditRecord.objects.filter(action="audit.pruned").count() == 3
    _assert_whole(tmp_path, capsys)


def _interrupt_when(monkeypatch, name: str, touching: str) -> None:
    """Ctrl-C arrives while os.`name` works on a path containing `touching` (the disk, under
    the prune): raised there, as Python raises KeyboardInterrupt wherever the signal finds it."""
    real = getattr(os, name)

    def interrupted(target: object, *args: object, **kwargs: object) -> object:
        path = os.readlink(f"/proc/self/fd/{target}") if isinstance(target, int) else target
        if touching in str(path) + "".join(str(arg) for arg in args):
            raise KeyboardInterrupt
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, name, interrupted)


@pytest.mark.parametrize(
    ("name", "left_pending"),
    [
        # While the second chunk's archive is made durable: before its transaction.
        ("fsync", False),
        # After the second chunk's commit, while its archive gets its name.
        ("link", True),
    ],
)
def test_a_run_interrupted_in_a_chunk_keeps_the_chain_and_the_same_command_finishes_it(
    backlog, tmp_path: Path, capsys, monkeypatch, name: str, left_pending: bool
) -> None:
    out = tmp_path / "audit-2025.jsonl.gz"
    with monkeypatch.context() as disk:
        _interrupt_when(disk, name, "audit-2025-5-to-8")
        with pytest.raises(
            CommandError, match=r"Interrupted\. Archived and pruned so far: 1 chunk, through #4\."
        ) as e:
            _run(out, capsys)
    assert e.value.returncode == 130

    committed = list(AuditPruneCheckpoint.objects.values_list("sequence", flat=True))
    assert committed == ([4, 8] if left_pending else [4])
    pending = list(tmp_path.glob("*.pending"))
    assert [path.name for path in pending] == (
        ["audit-2025-5-to-8.jsonl.gz.pending"] if left_pending else []
    )
    capsys.readouterr()
    call_command("audit_verify")
    assert "Audit chain intact" in capsys.readouterr().out

    said = _run(out, capsys)

    # A chunk that had committed is named, not archived again; the rest goes on from there.
    assert ("#5 to #8" in said) is not left_pending
    assert list(AuditPruneCheckpoint.objects.values_list("first_sequence", "sequence")) == [
        (1, 4),
        (5, 8),
        (9, 10),
    ]
    _assert_whole(tmp_path, capsys)


def _full_pipe() -> tuple[int, int]:
    """A pipe already full: a process whose stdout it is blocks at its first write."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        while True:
            os.write(write, b"\0")
    except BlockingIOError:
        pass
    os.set_blocking(write, True)
    return read, write


def _blocked_writing(process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the run ended before it could be interrupted"
    return "pipe_write" in Path(f"/proc/{process.pid}/wchan").read_text()


def _drain(read: int) -> bytes:
    chunks = []
    while data := os.read(read, 65536):
        chunks.append(data)
    return b"".join(chunks).lstrip(b"\0")


@pytest.mark.timeout(120)
def test_ctrl_c_between_chunks_stops_a_real_run_and_the_same_command_finishes_it(
    backlog, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "audit-2025.jsonl.gz"
    keys = settings.AUDIT_HMAC_KEYS
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url_for_subprocesses(),
        "CONSOLE_VAR_DIR": str(tmp_path / "var"),
        "AUDIT_HMAC_KEY": keys[-1],
        "AUDIT_HMAC_RETIRED_KEYS": ",".join(keys[:-1]),
        "AUDIT_ARCHIVE_CHUNK_RECORDS": "4",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "manage.py", "audit_archive", "--before", _cut_date()]
    command += ["--out", str(out)]
    # Its stdout a full pipe: the run blocks printing its first chunk's line, after that chunk
    # committed and before the next starts. Ctrl-C finds it there, between chunks.
    read, write = _full_pipe()
    fcntl.fcntl(read, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=write, stderr=stderr
        )
    os.close(write)
    try:
        wait_until(lambda: _blocked_writing(process), timeout=60, what="the first chunk's line")
        process.send_signal(signal.SIGINT)
        printed = _drain(read).decode()
        assert process.wait(timeout=30) == 130
    finally:
        os.close(read)
        if process.poll() is None:
            process.kill()
            process.wait()
    stopped = (tmp_path / "stderr").read_text()
    assert "Interrupted. Archived and pruned so far: 1 chunk, through #4." in stopped, stopped
    assert "[1/3] Archived and pruned 4 audit records, #1 to #4" in printed
    assert list(AuditPruneCheckpoint.objects.values_list("sequence", flat=True)) == [4]
    assert AuditRecord.objects.filter(sequence__gt=4, sequence__lte=OLD_RECORDS).count() == 6
    capsys.readouterr()
    call_command("audit_verify", f"--archive={tmp_path / 'audit-2025-1-to-4.jsonl.gz'}")
    assert "Audit chain intact" in capsys.readouterr().out

    said = _run(out, capsys)

    assert "[1/2] Archived and pruned 4 audit records, #5 to #8" in said
    _assert_whole(tmp_path, capsys)
