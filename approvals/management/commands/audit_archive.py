"""Archive the audit trail's oldest records to files, verify them, then delete them from the
database, in chunks (approvals.audit.prune has the rules; this parses and reports)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit.prune import (
    AuditArchiveUnnamed,
    AuditPruneRefused,
    AuditPruneResult,
    audit_archive_chunks_left,
    audit_archive_in_chunks,
    audit_cut_find,
)
from approvals.management.commands.archive_decided import parse_cutoff

PRUNED_BY = "manage.py audit_archive"
# Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report one.
INTERRUPTED = 130


def audit_archive_chunk_path(out: Path, *, after: int, through: int) -> Path:
    """`out` with a chunk's range in its name, before its suffixes:
    audit-2025.jsonl.gz -> audit-2025-1-to-250000.jsonl.gz (numbered by sequence, so a run
    started again after an interruption names its chunks without clashing)."""
    name = out.name
    suffix = next((s for s in (".jsonl.gz", ".gz") if name.endswith(s) and name != s), "")
    return out.with_name(f"{name.removesuffix(suffix)}-{after + 1}-to-{through}{suffix}")


class Command(BaseCommand):
    help = (
        "Write every audit record up to --before (a date or ISO time, UTC: the last record "
        "created before it; or a sequence number: up to and including that record) and after "
        "the previous prune to new gzip'd archives; fsync and verify each; then delete exactly "
        "its records and record a prune checkpoint. It goes in chunks of at most "
        "AUDIT_ARCHIVE_CHUNK_RECORDS records, each its own archive and transaction: --out "
        "itself when one chunk holds the run, else --out with each chunk's range in its name "
        "(audit-2025-1-to-250000.jsonl.gz). Stopped half-way (Ctrl-C, a crash), the chunks "
        "done stay done: run the same command again to go on. The newest record always stays, "
        "and nothing younger than AUDIT_ARCHIVE_MIN_AGE_DAYS is archived. "
        "`audit_verify --archive FILE` checks an archive against its checkpoint."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--before", required=True, help="YYYY-MM-DD, an ISO 8601 time, or a sequence number"
        )
        parser.add_argument(
            "--out",
            required=True,
            type=Path,
            help="the archive file to create (never replaced); with several chunks, the "
            "pattern of their names",
        )

    def handle(self, *args: Any, before: str, out: Path, **options: Any) -> None:
        done: list[AuditPruneResult] = []
        try:
            if before.isdigit():
                cut = audit_cut_find(through_sequence=int(before))
            else:
                cut = audit_cut_find(before=parse_cutoff(before))
            chunks = audit_archive_chunks_left(cut)

            def path_for(after: int, through: int) -> Path:
                if chunks == 1:
                    return out
                return audit_archive_chunk_path(out, after=after, through=through)

            for result in audit_archive_in_chunks(cut=cut, path_for=path_for, by=PRUNED_BY):
                done.append(result)
                self._chunk_report(result, number=len(done), chunks=chunks)
        except AuditPruneRefused as refused:
            raise CommandError(f"{self._stopped(done)}{refused}.") from None
        except AuditArchiveUnnamed as unnamed:
            raise CommandError(f"{unnamed}. {self._again(done)}") from None
        except KeyboardInterrupt:
            # To stderr: stdout may be the pipe that was blocked when Ctrl-C came.
            raise CommandError(
                f"Interrupted. {self._again(done)}", returncode=INTERRUPTED
            ) from None
        checkpoint = done[-1].checkpoint
        if len(done) > 1:
            self.stdout.write(
                f"Archived and pruned {sum(r.checkpoint.records for r in done)} audit records, "
                f"#{done[0].checkpoint.first_sequence} to #{checkpoint.sequence}, in "
                f"{len(done)} archives (`audit_verify --archive` each)."
            )
        self.stdout.write(
            f"The live chain now starts after checkpoint {checkpoint.sequence}:{checkpoint.hash}. "
            "Keep the archives with your backups, and the audit keys that verify them."
        )

    def _chunk_report(self, result: AuditPruneResult, *, number: int, chunks: int) -> None:
        checkpoint = result.checkpoint
        progress = f"[{number}/{chunks}] " if chunks > 1 else ""
        self.stdout.write(
            f"{progress}Archived and pruned {checkpoint.records} audit records, "
            f"#{checkpoint.first_sequence} to #{checkpoint.sequence}, to {result.archive.path} "
            f"(SHA-256 {checkpoint.archive_sha256})."
        )
        # Each line as its chunk commits, also into a pipe or a log: it says how far a run got.
        self.stdout.flush()

    @staticmethod
    def _stopped(done: list[AuditPruneResult]) -> str:
        if not done:
            return "Nothing archived or deleted: "
        return f"{_so_far(done)} Nothing more archived or deleted: "

    @staticmethod
    def _again(done: list[AuditPruneResult]) -> str:
        return (
            f"{_so_far(done)} A chunk stopped half-way was rolled back, or left a .pending "
            "archive the next run settles. Run the same command again to go on from there (no "
            "record is archived twice)."
        )


def _so_far(done: list[AuditPruneResult]) -> str:
    if not done:
        return "No chunk was archived and pruned."
    chunks = f"{len(done)} chunk" + ("s" if len(done) > 1 else "")
    return f"Archived and pruned so far: {chunks}, through #{done[-1].checkpoint.sequence}."
