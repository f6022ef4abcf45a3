"""Benchmark: peak Python memory while exporting N audit records as JSON Lines and CSV.

Seeds N chained records inside a transaction that is rolled back at the end, so the real audit
trail is untouched (and PostgreSQL's append-only trigger never has to allow a delete). Peak
memory is measured with tracemalloc around consuming the streamed response only.
"""

import time
import tracemalloc
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from approvals.audit import GENESIS_HASH, audit_record_digest
from approvals.audit.export import (
    AuditFilter,
    audit_export_csv,
    audit_export_jsonl,
    audit_export_response,
    audit_records_filtered,
)
from approvals.models import AuditRecord


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Print peak memory for streaming an export of N audit records."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--records", type=int, default=100_000)

    def handle(self, *args: Any, records: int, **options: Any) -> None:
        try:
            with transaction.atomic():
                since = self._seed(records)
                for name, encoder in (("jsonl", audit_export_jsonl), ("csv", audit_export_csv)):
                    self._measure(name, encoder, since)
                raise _Rollback
        except _Rollback:
            pass

    def _seed(self, count: int) -> Any:
        last = AuditRecord.objects.order_by("-sequence").first()
        sequence = last.sequence if last else 0
        prev_hash = last.hash if last else GENESIS_HASH
        start = timezone.now() + timedelta(days=1)  # after anything real, for the time filter
        started = time.perf_counter()
        batch: list[AuditRecord] = []
        for index in range(count):
            sequence += 1
            record = AuditRecord(
                sequence=sequence,
                created_at=start + timedelta(milliseconds=index),
                action="request.approved",
                actor_type="reviewer",
                actor_id=str(index % 50),
                actor_label=f"reviewer-{index % 50}",
                object_type="approvals.approvalrequest",
                object_id=f"bench-{index:08d}",
                object_label="issue_refund (bench)",
                ip_address="10.0.0.1",
                user_agent="bench",
                request_id=f"bench-{index:08d}",
                before={"status": "pending"},
                after={"status": "approved", "note": "looks right " * 5},
                context={},
                prev_hash=prev_hash,
            )
            record.hash = audit_record_digest(record)
            prev_hash = record.hash
            batch.append(record)
            if len(batch) == 5000:
                AuditRecord.objects.bulk_create(batch)
                batch = []
        AuditRecord.objects.bulk_create(batch)
        self.stdout.write(f"seeded {count} records in {time.perf_counter() - started:.1f}s")
        return start

    def _measure(self, name: str, encoder: Any, since: Any) -> None:
        records = audit_records_filtered(audit_filter=AuditFilter(since=since))
        # The response the API returns, consumed the way the ASGI server consumes it.
        response = audit_export_response(stream=encoder(records), export_format=name)
        tracemalloc.start()
        started = time.perf_counter()
        total_bytes, lines = async_to_sync(_consume)(response)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.stdout.write(
            f"{name}: {lines} lines, {total_bytes / 1e6:.1f} MB in {elapsed:.1f}s, "
            f"peak traced memory {peak / 1e6:.2f} MB"
        )


async def _consume(response: Any) -> tuple[int, int]:
    total_bytes = lines = 0
    async for chunk in response:
        total_bytes += len(chunk)
        lines += chunk.count(b"\n")
    return total_bytes, lines
