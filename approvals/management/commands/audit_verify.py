"""Check the whole audit chain, or an exported file; exit non-zero naming what does not fit."""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit import (
    AuditAnchor,
    ChainVerification,
    audit_anchors_check,
    audit_chain_verify,
    audit_records_verify,
)
from approvals.models import AuditRecord


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain with this console's HMAC keys (streams it; safe on "
        "any size). --anchor SEQ:HASH (from `manage.py audit_anchor`, kept outside the database) "
        "also checks that the chain still holds that record with that hash, which catches a "
        "chain cut short or rewritten. --file checks a JSON Lines export instead of the database."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH")
        parser.add_argument("--file", type=Path, help="a JSON Lines export to verify offline")

    def handle(
        self, *args: Any, chunk_size: int, anchor: list[str], file: Path | None, **options: Any
    ) -> None:
        try:
            anchors = [AuditAnchor.parse(text) for text in anchor]
        except ValueError as error:
            raise CommandError(f"--anchor: {error}.") from None
        if file is not None:
            self._verify_file(file, anchors)
            return
        result = audit_chain_verify(chunk_size=chunk_size)
        self._fail_on_break(result)
        if problem := audit_anchors_check(anchors):
            raise CommandError(f"Audit chain does not hold the anchor: {problem}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {result.checked} records, "
                f"anchor {result.checked}:{result.last_hash}."
            )
        )

    def _fail_on_break(self, result: ChainVerification) -> None:
        if result.first_break is None:
            return
        broken = result.first_break
        where = f"record #{broken.sequence}"
        if broken.record_id is not None:
            where += f" (id {broken.record_id})"
        raise CommandError(
            f"Audit chain broken at {where}: {broken.reason}. "
            f"{result.checked} records before it verified."
        )

    def _verify_file(self, path: Path, anchors: list[AuditAnchor]) -> None:
        held: dict[int, str] = {}
        wanted = {anchor.sequence for anchor in anchors}
        last_sequence = 0

        def records() -> Iterator[AuditRecord]:
            nonlocal last_sequence
            with path.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        row["created_at"] = datetime.fromisoformat(row["created_at"])
                        record = AuditRecord(**row)
                    except (ValueError, TypeError, KeyError) as error:
                        raise CommandError(
                            f"{path}, line {number}: not an exported audit record ({error})."
                        ) from None
                    last_sequence = record.sequence
                    if record.sequence in wanted:
                        held[record.sequence] = record.hash
                    yield record

        result = audit_records_verify(records())
        self._fail_on_break(result)
        for checkpoint in anchors:
            problem = checkpoint.problem(
                stored_hash=held.get(checkpoint.sequence), last_sequence=last_sequence
            )
            if problem:
                raise CommandError(f"The export does not hold the anchor: {problem}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Export intact: {result.checked} records, anchor {last_sequence}:"
                f"{result.last_hash}."
            )
        )
