"""Check the whole audit chain; exit non-zero naming the first record that does not fit."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain (streams it; safe on any size)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--chunk-size", type=int, default=2000)

    def handle(self, *args: Any, chunk_size: int, **options: Any) -> None:
        result = audit_chain_verify(chunk_size=chunk_size)
        if result.first_break is not None:
            broken = result.first_break
            where = f"record #{broken.sequence}"
            if broken.record_id is not None:
                where += f" (id {broken.record_id})"
            raise CommandError(
                f"Audit chain broken at {where}: {broken.reason}. "
                f"{result.checked} records before it verified."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {result.checked} records, last hash {result.last_hash}."
            )
        )
