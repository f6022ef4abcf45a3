"""Check a run's record (`run_export`, the API, the admin action) offline."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit import SignedLinesProblem
from approvals.run_export import run_export_verify


class Command(BaseCommand):
    help = (
        "Verify a run's record: its closing SHA-256 covers every line (not cut short or "
        "edited), each audit record in it recomputes under this console's audit keys and lies "
        "within its anchor, and every request, verdict, decision and outcome line says what its "
        "audit record says. Needs no database."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            with file.open("rb") as lines:
                summary = run_export_verify(lines)
        except (OSError, SignedLinesProblem) as problem:
            raise CommandError(f"{file}: {problem}") from None
        self.stdout.write(self.style.SUCCESS(f"Run record intact: {summary}."))
