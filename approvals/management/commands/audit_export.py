"""Export audit records to a file or stdout, streamed: for auditors and archiving jobs."""

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from approvals.audit import AuditActor
from approvals.audit.export import EXPORT_FORMATS, AuditFilter, audit_export_start


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"--{name} must be an ISO 8601 time with a zone, got {value!r}.")
    return parsed


class Command(BaseCommand):
    help = "Stream audit records as JSON Lines or CSV (same filters as the API)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since")
        parser.add_argument("--until")
        parser.add_argument("--actor", default="")
        parser.add_argument("--action", default="")
        parser.add_argument("--object-type", default="")
        parser.add_argument("--object-id", default="")
        parser.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="jsonl")
        parser.add_argument("--output", help="a file path; stdout when omitted")

    def handle(self, *args: Any, **options: Any) -> None:
        audit_filter = AuditFilter(
            since=_when(options["since"], "since"),
            until=_when(options["until"], "until"),
            actor=options["actor"],
            action=options["action"],
            object_type=options["object_type"],
            object_id=options["object_id"],
        )
        stream = audit_export_start(
            audit_filter=audit_filter,
            export_format=options["format"],
            actor=AuditActor.system("manage.py audit_export"),
        )
        if options["output"]:
            with open(options["output"], "wb") as output:
                for chunk in stream:
                    output.write(chunk)
        else:
            for chunk in stream:
                self.stdout.write(chunk.decode(), ending="")
