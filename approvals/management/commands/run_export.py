"""Write a run's record for replay (approvals/run_export.py) as JSON Lines."""

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agents.models import Run
from approvals.models import ApprovalRequest
from approvals.run_export import run_export_start


class Command(BaseCommand):
    help = (
        "Export one run's record for replay: its requests, the policy's verdicts, the "
        "decisions, the outcomes and the trace events in order, then the audit records that "
        "vouch for them and a closing SHA-256 (check it with `run_export_verify FILE`). "
        "To stdout, or to --output (never overwritten)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run", help="the run's id (a UUID, as the API shows it)")
        parser.add_argument("--output", type=Path, help="write here instead of stdout")

    def handle(self, *args: Any, run: str, output: Path | None, **options: Any) -> None:
        try:
            found = Run.objects.select_related("agent").filter(code=run).first()
        except ValidationError:
            found = None
        if found is None:
            raise CommandError(f"No run {run!r}.")
        # Whoever runs manage.py has the database: every request.
        lines = run_export_start(
            run=found, actor=None, via="manage.py", approvals=ApprovalRequest.objects.all()
        )
        if output is None:
            for line in lines:
                self.stdout.write(line.decode(), ending="")
            return
        try:
            with output.open("xb") as file:
                file.writelines(lines)
        except FileExistsError:
            raise CommandError(f"{output} exists: an export is never overwritten.") from None
        self.stderr.write(f"Run {found.code} exported to {output}.")
