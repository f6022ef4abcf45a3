"""Check the whole audit chain; exit non-zero naming the first record that does not fit."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit import audit_chain_verify
from approvals.models import AuditRecord


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain (streams it; safe on any size). --anchor SEQ:HASH "
        "also checks a checkpoint kept outside the database (e.g. a hash printed by an earlier "
        "run), which catches a chain rewritten from the start."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH")

    def handle(self, *args: Any, chunk_size: int, anchor: list[str], **options: Any) -> None:
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
        for checkpoint in anchor:
            sequence, _, expected = checkpoint.partition(":")
            if not sequence.isdigit() or len(expected) != 64:
                raise CommandError(f"--anchor must be SEQ:HASH, got {checkpoint!r}.")
            stored = (
                AuditRecord.objects.filter(sequence=int(sequence))
                .values_list("hash", flat=True)
                .first()
            )
            if stored != expected:
                raise CommandError(
                    f"Audit chain does not match the anchor at record #{sequence}: "
                    "the chain was rewritten since that checkpoint was taken."
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {result.checked} records, "
                f"anchor #{result.checked}:{result.last_hash}."
            )
        )
