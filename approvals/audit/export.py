"""Reading the audit trail: filters, and JSON Lines / CSV streams that never hold it in memory.

The rows come from `.iterator(chunk_size=...)` (a server-side cursor on PostgreSQL) and are encoded
one at a time, so exporting a year of records costs the memory of one chunk. Under ASGI the
response must be fed by an async iterator: Django serves a sync iterator there by reading it
into a list first (django.http.StreamingHttpResponse.__aiter__), which is exactly what must not
happen to a year of records.
"""

import csv
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from approvals.audit.keys import HASHED_FIELDS
from approvals.audit.models import AuditRecord
from approvals.audit.trail import AuditAction, audit_record

EXPORT_CHUNK_SIZE = 2000

# Every hashed field plus the hash: an export can be re-verified offline.
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    # Matches the actor's id (user pk, agent code) or label (username, agent name) exactly.
    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""


def audit_records_filtered(*, audit_filter: AuditFilter) -> QuerySet[AuditRecord]:
    records = AuditRecord.objects.order_by("sequence")
    if audit_filter.since is not None:
        records = records.filter(created_at__gte=audit_filter.since)
    if audit_filter.until is not None:
        records = records.filter(created_at__lt=audit_filter.until)
    if audit_filter.actor:
        records = records.filter(Q(actor_id=audit_filter.actor) | Q(actor_label=audit_filter.actor))
    if audit_filter.action:
        records = records.filter(action=audit_filter.action)
    if audit_filter.object_type:
        records = records.filter(object_type=audit_filter.object_type)
    if audit_filter.object_id:
        records = records.filter(object_id=audit_filter.object_id)
    return records


def audit_records_about(object_ids: Iterable[str]) -> QuerySet[AuditRecord]:
    """The records about any of these objects (request and run codes), in chain order: through
    audit_object_id, which is led by the id because the callers know no object type."""
    return AuditRecord.objects.filter(object_id__in=list(object_ids)).order_by("sequence")


def _row(record: AuditRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in EXPORT_FIELDS}
    row["created_at"] = record.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return row


def audit_export_jsonl(records: QuerySet[AuditRecord]) -> Iterator[bytes]:
    for record in records.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        yield (json.dumps(_row(record), ensure_ascii=False, sort_keys=True) + "\n").encode()


class _Line:
    """A file-like sink for csv.writer that hands back each line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def audit_export_csv(records: QuerySet[AuditRecord]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS).encode()
    for record in records.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        row = _row(record)
        for name in ("before", "after", "context"):
            row[name] = "" if row[name] is None else json.dumps(row[name], sort_keys=True)
        yield writer.writerow(
            ["" if row[name] is None else _csv_safe(row[name]) for name in EXPORT_FIELDS]
        ).encode()


def _csv_safe(value: object) -> object:
    # Labels come from agents and users: a leading = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


EXPORT_FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def audit_export_start(
    *, audit_filter: AuditFilter, export_format: str, actor: Any
) -> Iterator[bytes]:
    """Record who exported what, then return the stream of the matching records.

    JSON Lines carries every field exactly as hashed, so an export can be re-verified offline;
    CSV is for people and spreadsheets.
    """
    filters = {key: value for key, value in vars(audit_filter).items() if value}
    audit_record(
        action=AuditAction.AUDIT_EXPORTED,
        actor=actor,
        object_type="approvals.auditrecord",
        context={"format": export_format, "filters": filters},
    )
    records = audit_records_filtered(audit_filter=audit_filter)
    if export_format == "csv":
        return audit_export_csv(records)
    return audit_export_jsonl(records)


async def _async_batches(chunks: Iterator[bytes], *, lines: int) -> AsyncIterator[bytes]:
    # thread_sensitive: every batch runs in the request's one sync thread, where the database
    # connection (and on PostgreSQL the open server-side cursor) lives.
    next_batch = sync_to_async(
        lambda: b"".join(itertools.islice(chunks, lines)), thread_sensitive=True
    )
    try:
        while batch := await next_batch():
            yield batch
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


def audit_export_response(
    *, stream: Iterator[bytes], export_format: str, lines_per_write: int = 500
) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return streamed_download(
        stream=stream,
        content_type=EXPORT_FORMATS[export_format],
        filename=f"audit-{stamp}.{export_format}",
        lines_per_write=lines_per_write,
    )


def streamed_download(
    *, stream: Iterator[bytes], content_type: str, filename: str, lines_per_write: int = 500
) -> StreamingHttpResponse:
    """An attachment fed line batch by line batch from a sync stream of lines (the database
    read in the request's sync thread), never read into memory whole."""
    response = StreamingHttpResponse(
        _async_batches(stream, lines=lines_per_write), content_type=content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
