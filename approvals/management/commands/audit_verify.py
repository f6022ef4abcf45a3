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
from approvals.audit.archive import archive_check_against_checkpoints, audit_archive_verify
from approvals.audit.signed_lines import SignedLinesProblem
from approvals.models import AuditRecord


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain with this console's HMAC keys (streams it; safe on "
        "any size). --anchor SEQ:HASH (from `manage.py audit_anchor`, kept outside the database) "
        "also checks that the chain still holds that record with that hash, which catches a "
        "chain cut short or rewritten. --file checks a JSON Lines export instead of the database. "
        "After `audit_archive` the chain starts at its prune checkpoint; --archive FILE checks an "
        "archive on its own and against its checkpoint, and anchors older than the checkpoint "
        "against it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--chunk-size", type=int, default=2000)
        parser.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH")
        parser.add_argument("--file", type=Path, help="a JSON Lines export to verify offline")
        parser.add_argument(
            "--archive",
            type=Path,
            action="append",
            default=[],
            help="an archive written by audit_archive (repeatable)",
        )

    def handle(
        self,
        *args: Any,
        chunk_size: int,
        anchor: list[str],
        file: Path | None,
        archive: list[Path],
        **options: Any,
    ) -> None:
        try:
            anchors = [AuditAnchor.parse(text) for text in anchor]
        except ValueError as error:
            raise CommandError(f"--anchor: {error}.") from None
        if file is not None:
            self._verify_file(file, anchors)
            return
        archived_hashes = self._verify_archives(archive, anchors)
        result = audit_chain_verify(chunk_size=chunk_size)
        self._fail_on_break(result)
        anchors_check = audit_anchors_check(anchors, archived_hashes=archived_hashes)
        for note in anchors_check.archived:
            self.stdout.write(self.style.WARNING(note) if "NOT" in note else note)
        if anchors_check.problem:
            raise CommandError(f"Audit chain does not hold the anchor: {anchors_check.problem}.")
        start = ""
        if result.starts_after:
            start = f" from #{result.starts_after + 1} (after the prune checkpoint)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {result.checked} records{start}, "
                f"anchor {result.last_sequence}:{result.last_hash}."
            )
        )

    def _verify_archives(self, paths: list[Path], anchors: list[AuditAnchor]) -> dict[int, str]:
        """Check each archive on its own and against its prune checkpoint; the hashes they hold
        at the anchors' places."""
        held: dict[int, str] = {}
        for path in paths:
            try:
                verified = audit_archive_verify(path, holding={a.sequence for a in anchors})
            except SignedLinesProblem as problem:
                raise CommandError(f"Archive {path} does not verify: {problem}.") from None
            if mismatch := archive_check_against_checkpoints(verified):
                raise CommandError(f"Archive {path} does not match the database: {mismatch}.")
            self.stdout.write(f"Archive {path} intact, matches its prune checkpoint: {verified}.")
            held.update(verified.held)
        return held

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
