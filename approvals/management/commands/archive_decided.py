"""Archive decided requests older than a date to a gzip'd JSON Lines file, then remove them."""

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from approvals.retention import approvals_archive_decided, default_archive_path


class Command(BaseCommand):
    help = (
        "Write every request decided before --before (a date or ISO time, UTC), with its "
        "decision, events, notifications, votes, runs and the audit records about them, to a "
        "compressed JSON Lines archive (in ARCHIVE_DIR, or --output), then delete exactly those "
        "rows. Audit records stay in the database. `archive_verify FILE` checks an archive."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--before", required=True, help="YYYY-MM-DD or an ISO 8601 time")
        parser.add_argument("--output", type=Path, help="the archive file to create")

    def handle(self, *args: Any, before: str, output: Path | None, **options: Any) -> None:
        cutoff = parse_cutoff(before)
        if cutoff > timezone.now():
            raise CommandError(f"--before {before}: in the future; nothing is decided after now.")
        path = output or default_archive_path(cutoff)
        try:
            result = approvals_archive_decided(before=cutoff, path=path)
        except FileExistsError:
            raise CommandError(f"{path} exists: an archive is never overwritten.") from None
        counts = ", ".join(f"{count} {label}" for label, count in sorted(result.archived.items()))
        self.stdout.write(f"Archived to {result.path}: {counts or 'nothing'}.")
        self.stdout.write(f"Audit anchor at archive time: {result.anchor or '(empty trail)'}")
        if result.kept:
            self.stderr.write(f"{result.kept} requests changed meanwhile and were kept.")


def parse_cutoff(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--before {text!r}: not a date (YYYY-MM-DD) or ISO time.") from None
    if len(text) == 10:  # a date: its midnight
        parsed = datetime.combine(parsed.date(), time.min)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
