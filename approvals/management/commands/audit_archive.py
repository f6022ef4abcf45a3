"""Archive the audit trail's oldest records to a file, verify it, then delete them from the
database (approvals.audit.prune has the rules; this parses and reports)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit.prune import (
    AuditArchiveUnnamed,
    AuditPruneRefused,
    audit_archive_and_prune,
    audit_cut_find,
)
from approvals.management.commands.archive_decided import parse_cutoff


class Command(BaseCommand):
    help = (
        "Write every audit record up to --before (a date or ISO time, UTC: the last record "
        "created before it; or a sequence number: up to and including that record) and after "
        "the previous prune to a new gzip'd archive, --out; fsync and verify it; then delete "
        "exactly those records and record a prune checkpoint, in one transaction. The newest "
        "record always stays, and nothing younger than AUDIT_ARCHIVE_MIN_AGE_DAYS is archived. "
        "`audit_verify --archive FILE` checks an archive against its checkpoint."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--before", required=True, help="YYYY-MM-DD, an ISO 8601 time, or a sequence number"
        )
        parser.add_argument(
            "--out", required=True, type=Path, help="the archive file to create (never replaced)"
        )

    def handle(self, *args: Any, before: str, out: Path, **options: Any) -> None:
        try:
            if before.isdigit():
                cut = audit_cut_find(through_sequence=int(before))
            else:
                cut = audit_cut_find(before=parse_cutoff(before))
            result = audit_archive_and_prune(cut=cut, path=out)
        except AuditPruneRefused as refused:
            raise CommandError(f"Nothing archived or deleted: {refused}.") from None
        except AuditArchiveUnnamed as unnamed:
            raise CommandError(f"{unnamed}.") from None
        checkpoint = result.checkpoint
        self.stdout.write(
            f"Archived and pruned {checkpoint.records} audit records, "
            f"#{checkpoint.first_sequence} to #{checkpoint.sequence}, to {out} "
            f"(SHA-256 {checkpoint.archive_sha256})."
        )
        self.stdout.write(
            f"The live chain now starts after checkpoint {checkpoint.sequence}:{checkpoint.hash}. "
            "Keep the archive with your backups, and the audit keys that verify it."
        )
