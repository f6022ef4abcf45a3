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
"""

import gzip
from collections.abc import Collection, Iterator
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
