"""Audit archives: the oldest part of the chain, written to a file before the prune deletes it.

The file is a signed export (approvals.audit.signed_lines), gzip'd JSON Lines:

    {"kind": "archive", "data": {"format": "audit-archive/1", "after": {...}, "through": {...}}}
    {"kind": "audit", "data": <a record, exactly as audit_export writes it>}   one a record
    {"kind": "anchor", "data": {"anchor": "SEQ:HASH"}}                        the cut
    {"kind": "end", "data": {"sha256": ...}}                                  over every line

"after" is where the archived run starts (the previous prune's cut, or sequence 0 and the
genesis hash) and "through" where it ends (the cut). Verifying a file needs no database: it is
whole and unedited, every record recomputes under the audit keys, and the records link without
a gap from "after" to "through". Matching it to the database's checkpoint is
`archive_check_against_checkpoints`. Both stream: an archive can hold a month of records.

A prune writes its archive under a pending name (`NAME.pending`) and gives it its own name only
once the prune has committed, so a file by an archive's name always holds pruned records. A
process killed in between leaves the pending file; the next prune into that directory settles
it (`audit_archive_pending_settle`): renamed if its prune committed, removed if not. Prunes into
one directory take turns (`audit_archive_directory_locked`), so none settles another's file
while that one is still at work.
"""

import fcntl
import gzip
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from approvals.audit.export import EXPORT_CHUNK_SIZE
from approvals.audit.export import _row as audit_row
from approvals.audit.keys import GENESIS_HASH, audit_keys
from approvals.audit.models import AuditPruneCheckpoint, AuditRecord
from approvals.audit.signed_lines import (
    SignedEntries,
    SignedLinesProblem,
    SignedLinesWriter,
    signed_line,
)
from approvals.audit.verification import ChainWalk, audit_record_from_export

AUDIT_ARCHIVE_FORMAT = "audit-archive/1"
PENDING_SUFFIX = ".pending"
# Kept in the directory for good: removing a lock file lets two processes lock two inodes.
DIRECTORY_LOCK_NAME = ".audit-archive.lock"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainPoint:
    """A place in the chain: a record's sequence and hash (0 and the genesis: before #1)."""

    sequence: int
    hash: str
    keyed: bool = False

    def as_data(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "hash": self.hash, "keyed": self.keyed}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "ChainPoint":
        return cls(int(data["sequence"]), str(data["hash"]), bool(data["keyed"]))

    @classmethod
    def at_checkpoint(cls, checkpoint: AuditPruneCheckpoint | None) -> "ChainPoint":
        """Where a prune's cut left the chain; before #1 when there was no prune."""
        if checkpoint is None:
            return cls(0, GENESIS_HASH, False)
        return cls(checkpoint.sequence, checkpoint.hash, checkpoint.keyed)


@dataclass
class AuditArchive:
    """What a verified archive holds."""

    path: Path
    after: ChainPoint
    through: ChainPoint
    records: int = 0
    sha256: str = ""
    # The hashes of the records asked for (anchors), by sequence.
    held: dict[int, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.records} audit records, #{self.after.sequence + 1} to "
            f"#{self.through.sequence}, anchor {self.through.sequence}:{self.through.hash}"
        )


def audit_archive_write(
    *, path: Path, after: ChainPoint, through: ChainPoint, records: QuerySet[AuditRecord]
) -> str:
    """Write `records` (the run after `after`, through `through`) to a new archive at `path`,
    fsync'd with its directory entry; the SHA-256 it closes with. A file that could not be
    finished is removed, and the error raised: an archive on disk is a whole one."""
    writer = SignedLinesWriter(path)
    try:
        header = {
            "format": AUDIT_ARCHIVE_FORMAT,
            "after": after.as_data(),
            "through": through.as_data(),
        }
        writer.write(signed_line("archive", header))
        for record in records.order_by("sequence").iterator(chunk_size=EXPORT_CHUNK_SIZE):
            writer.write(signed_line("audit", audit_row(record)))
        writer.write(signed_line("anchor", {"anchor": f"{through.sequence}:{through.hash}"}))
        return writer.close()
    except BaseException:
        writer.abandon()
        raise


def audit_archive_verify(path: Path, *, holding: Collection[int] = ()) -> AuditArchive:
    """Check an audit archive on its own (no database); what it holds, or SignedLinesProblem
    naming the first thing that does not fit. `holding`: sequences whose hashes to note
    (anchors to check against it)."""
    try:
        with gzip.open(path, "rb") as lines:
            entries = SignedEntries(lines)
            archive = _archive_walk(path, iter(entries), holding)
    except (OSError, EOFError) as error:
        raise SignedLinesProblem(f"not a whole archive ({error})") from None
    archive.sha256 = entries.closing_sha256
    return archive


def _archive_walk(
    path: Path, entries: Iterator[tuple[str, Any]], holding: Collection[int]
) -> AuditArchive:
    try:
        first: tuple[str, Any] = next(entries, ("", {}))
        kind, header = first
        if kind != "archive" or header.get("format") != AUDIT_ARCHIVE_FORMAT:
            raise SignedLinesProblem(f"not an audit archive (no {AUDIT_ARCHIVE_FORMAT} header)")
        archive = AuditArchive(
            path, ChainPoint.from_data(header["after"]), ChainPoint.from_data(header["through"])
        )
        walk = ChainWalk(
            audit_keys(), sequence=archive.after.sequence + 1, prev_hash=archive.after.hash
        )
        walk.keyed = archive.after.keyed
        anchor = ""
        for kind, data in entries:
            if kind == "anchor":
                anchor = data["anchor"]
                continue
            if kind != "audit" or anchor:
                raise SignedLinesProblem(f"a {kind!r} line where audit records belong")
            record = audit_record_from_export(data)
            if chain_break := walk.walk([record]):
                raise SignedLinesProblem(f"record #{chain_break.sequence}: {chain_break.reason}")
            if record.sequence in holding:
                archive.held[record.sequence] = record.hash
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SignedLinesProblem(f"not a whole archive ({error})") from None
    archive.records = walk.checked
    ends_at = ChainPoint(walk.expected_sequence - 1, walk.expected_prev, walk.keyed)
    if ends_at != archive.through or anchor != f"{ends_at.sequence}:{ends_at.hash}":
        raise SignedLinesProblem(
            f"the records end at #{ends_at.sequence}, not at the #{archive.through.sequence} "
            "its header and anchor name: records are missing from its end"
        )
    return archive


def archive_check_against_checkpoints(archive: AuditArchive) -> str | None:
    """Why a verified archive is not the one this database's prune checkpoint records; None when
    it is: the checkpoint at its last record has that record's hash and the archive's SHA-256,
    and the run starts where the checkpoint before it (or the chain) did."""
    through = archive.through
    checkpoint = AuditPruneCheckpoint.objects.filter(sequence=through.sequence).first()
    if checkpoint is None:
        return (
            f"no prune checkpoint ends at #{through.sequence}: the archive was not pruned "
            "from this database"
        )
    previous = (
        AuditPruneCheckpoint.objects.filter(sequence__lt=through.sequence)
        .order_by("-sequence")
        .first()
    )
    after = ChainPoint.at_checkpoint(previous)
    if (checkpoint.hash, checkpoint.keyed) != (through.hash, through.keyed):
        return f"its last record differs from the one pruned through at #{through.sequence}"
    if checkpoint.archive_sha256 != archive.sha256:
        return (
            f"its SHA-256 differs from the one recorded when #{checkpoint.first_sequence} to "
            f"#{checkpoint.sequence} were pruned: it is not that archive, or was rewritten"
        )
    if archive.after != after:
        return (
            f"it starts after #{archive.after.sequence}, but the prune before it ended at "
            f"#{after.sequence}"
        )
    return None


class AuditArchiveDirectoryBusy(Exception):
    """Another prune is writing an archive into the same directory right now."""


@contextmanager
def audit_archive_directory_locked(directory: Path) -> Iterator[None]:
    """Hold the directory's archive lock for the block; AuditArchiveDirectoryBusy at once if
    another process (or thread) holds it. The kernel releases it when its holder dies, which
    is what tells a pending file whose writer was killed from one still being written."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / DIRECTORY_LOCK_NAME).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AuditArchiveDirectoryBusy(
                f"another audit archive is being written into {directory}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def audit_archive_pending_path(path: Path) -> Path:
    """Where the archive that is to be `path` is written until its prune commits."""
    return path.with_name(path.name + PENDING_SUFFIX)


def audit_archive_publish(pending: Path, path: Path) -> None:
    """Give a committed prune's archive its name. A link, not a rename, so an existing file
    is never replaced; the directory is fsync'd so the name survives a crash."""
    os.link(pending, path)
    pending.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def audit_archive_pending_settle(directory: Path) -> list[str]:
    """Settle the pending archives a killed prune left in `directory` (hold its lock): what was
    done with each, also logged.

    A pending file that verifies and matches its prune checkpoint is the archive of a prune
    that committed: it gets its name. One no checkpoint names was never committed (the
    checkpoint is written in the prune's transaction): its records are still in the database,
    or in the archive of the prune that won, so it is removed. One a checkpoint names that does
    not verify is kept, for the operator: it may be the only copy of pruned records.
    """
    done = []
    for pending in sorted(directory.glob(f"*{PENDING_SUFFIX}")):
        path = pending.with_name(pending.name.removesuffix(PENDING_SUFFIX))
        problem = _pending_problem(pending)
        if problem is None and path.exists() and path.samefile(pending):
            pending.unlink()  # stopped between the link and the unlink
            said = f"{pending}: its prune had committed; the archive is {path.name}"
        elif problem is None and not path.exists():
            audit_archive_publish(pending, path)
            said = f"{pending}: its prune had committed; the archive is now {path.name}"
        elif problem is None:
            said = f"{pending}: its prune had committed, but {path.name} exists; both kept"
        elif _named_by_a_checkpoint(path):
            said = f"{pending}: a prune checkpoint names {path.name}, but {problem}; kept"
        else:
            pending.unlink()
            said = (
                f"{pending}: removed, its prune never committed (its records are still in the "
                "database, or in the archive of the prune that ran instead)"
            )
        logger.warning("Audit archive left by a stopped prune: %s.", said)
        done.append(said)
    return done


def _pending_problem(pending: Path) -> str | None:
    """Why `pending` is not the archive of a committed prune; None when it is."""
    try:
        archive = audit_archive_verify(pending)
    except SignedLinesProblem as problem:
        return f"it does not verify ({problem})"
    return archive_check_against_checkpoints(archive)


def _named_by_a_checkpoint(path: Path) -> bool:
    # By the file's own name: the checkpoint keeps the path as given, which may be relative.
    named = AuditPruneCheckpoint.objects.filter(archive_name__endswith=path.name)
    return any(
        Path(name).name == path.name for name in named.values_list("archive_name", flat=True)
    )
