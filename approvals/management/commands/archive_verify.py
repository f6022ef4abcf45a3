"""Check an archive written by archive_decided, offline: whole, signed, within its anchor."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.retention import ArchiveProblem, archive_verify


class Command(BaseCommand):
    help = (
        "Verify an archive from `archive_decided`: its closing SHA-256 covers every line (not "
        "cut short or edited), each audit record in it recomputes under this console's audit "
        "keys, and none lies beyond the anchor it closed with. Needs no database. Also takes an "
        "archive from `audit_archive` (then also checks the records' links; `audit_verify "
        "--archive` matches it to the database's prune checkpoint too)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            summary = archive_verify(file)
        except ArchiveProblem as problem:
            raise CommandError(f"{file}: {problem}") from None
        self.stdout.write(self.style.SUCCESS(f"Archive intact: {summary}."))
