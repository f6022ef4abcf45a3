"""Data lifecycle: decided requests older than the retention period are archived, then removed.

`approvals_archive_decided` writes each decided request with everything that hangs off it
(its decision, events, votes, notifications and their attempts, escalation firings, Slack
messages, AAP records...: every row whose foreign key leads to it, found from the models, so a
table added later is not forgotten), and runs that no longer hold any request, to a gzip'd JSON
Lines file; it flushes and fsyncs each batch before deleting exactly the rows it wrote. A row that
changed in between (a request referenced by a newer one) stops its batch's delete, which rolls
back: nothing is removed that the archive does not hold. Each batch's requests stay locked from
its read to its delete, and a run skips the rows another holds, so runs at the same time (two
beats, or the command beside beat) split the work and no request is archived twice.

The audit trail is not purged here: its records are append-only (the database refuses deletes),
so the live chain verifies as before; `manage.py audit_archive` (approvals.audit.prune) archives
and prunes it on its own. The archive carries the audit records about what it holds
and an anchor (the chain's newest SEQ:HASH when the archive was closed), and ends with a SHA-256
of every line before it, so `manage.py archive_verify FILE` checks it offline: the file is whole,
each audit record's HMAC recomputes, and none lies beyond the anchor; `audit_verify --anchor`
with that anchor checks the live chain still holds it.
"""

import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core import serializers
from django.db import models, transaction
from django.db.models import ProtectedError
from django.db.utils import IntegrityError

from agents.models import Run
from approvals.audit import SignedLinesProblem, audit_anchor_current, signed_lines_verify
from approvals.audit.archive import AUDIT_ARCHIVE_FORMAT, audit_archive_verify
from approvals.audit.export import _row as audit_row
from approvals.audit.export import audit_records_about
from approvals.audit.signed_lines import SignedLinesWriter, signed_line
from approvals.models import TERMINAL_STATUSES, ApprovalRequest

ARCHIVE_FORMAT = "console-archive/1"
BATCH_SIZE = 200


@dataclass
class ArchiveResult:
    path: Path
    archived: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # requests whose batch could not be removed (changed meanwhile)
    anchor: str = ""


def _dependents(model: type[models.Model]) -> list[tuple[type[models.Model], str]]:
    """(model, field name) of every relation pointing at `model`, self-references excluded."""
    return [
        (relation.related_model, relation.field.name)
        for relation in model._meta.related_objects
        if (relation.one_to_many or relation.one_to_one) and relation.related_model is not model
    ]


def _collect(
    model: type[models.Model],
    rows: Sequence[models.Model],
    into: list[list[models.Model]],
    seen: set[tuple[str, Any]],
    skip: frozenset[type[models.Model]] = frozenset(),
) -> None:
    """Every row hanging off `rows`, deepest first, then `rows` themselves (a delete order).

    A row reached twice (a notification hangs off its request and off its Slack message) is
    written and deleted once.
    """
    rows = [row for row in rows if (row._meta.label_lower, row.pk) not in seen]
    if not rows:
        return
    seen.update((row._meta.label_lower, row.pk) for row in rows)
    for dependent, field_name in _dependents(model):
        if dependent in skip:
            continue
        found = list(dependent._base_manager.filter(**{f"{field_name}__in": rows}))
        _collect(dependent, found, into, seen, skip)
    into.append(rows)


def _serialized(groups: Iterable[list[models.Model]]) -> Iterator[tuple[str, bytes]]:
    for rows in groups:
        label = rows[0]._meta.label_lower
        for item in serializers.serialize("python", rows):
            yield label, signed_line("row", item)


def decided_before(before: datetime) -> models.QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(
        status__in=TERMINAL_STATUSES, decided_at__lt=before
    ).order_by("pk")


def _delete(groups: list[list[models.Model]]) -> None:
    for rows in groups:  # deepest first, so PROTECT finds nothing left pointing at a row
        model = type(rows[0])
        model._base_manager.filter(pk__in=[row.pk for row in rows]).delete()


def approvals_archive_decided(*, before: datetime, path: Path) -> ArchiveResult:
    """Archive decided requests (decided before `before`) and what hangs off them, then delete."""
    result = ArchiveResult(path=path)
    writer = SignedLinesWriter(path)
    writer.write(signed_line("archive", {"format": ARCHIVE_FORMAT, "before": before.isoformat()}))
    last_pk = 0
    while True:
        try:
            with transaction.atomic():
                batch = _batch_claim(before, after_pk=last_pk)
                if not batch:
                    break
                last_pk = batch[-1].pk
                _batch_archive(batch, before, writer, result)
        except (ProtectedError, IntegrityError):
            result.kept += len(batch)
    current = audit_anchor_current()
    result.anchor = str(current[0]) if current else ""
    writer.write(signed_line("anchor", {"anchor": result.anchor}))
    writer.close()
    return result


def _batch_claim(before: datetime, *, after_pk: int) -> list[ApprovalRequest]:
    """The next batch of requests to archive, locked until the caller's transaction ends.

    Another run at the same time (two beats, or the command beside beat) skips the rows this
    one holds and takes the next batch, so each request goes into one archive; and a writer
    that locks the request, or adds a row pointing at it, waits for the delete rather than
    slipping in a row the archive does not hold.
    """
    return list(
        decided_before(before)
        .filter(pk__gt=after_pk)
        .select_for_update(skip_locked=True)[:BATCH_SIZE]
    )


def _batch_archive(
    batch: list[ApprovalRequest], before: datetime, writer: SignedLinesWriter, result: ArchiveResult
) -> None:
    """Write `batch` and what hangs off it, fsync'd, then delete exactly those rows."""
    # A request a newer, kept one points at (approved as suggested on it) stays.
    batch = [a for a in batch if not _referenced_by_kept(a, before)]
    groups: list[list[models.Model]] = []
    seen: set[tuple[str, Any]] = set()
    _collect(ApprovalRequest, batch, groups, seen)
    runs = _runs_emptied_by(batch)
    # Its requests are this batch's, collected above.
    _collect(Run, runs, groups, seen, skip=frozenset({ApprovalRequest}))
    for label, line in _serialized(groups):
        writer.write(line)
        result.archived[label] = result.archived.get(label, 0) + 1
    codes = [str(a.code) for a in batch] + [str(run.code) for run in runs]
    for record in audit_records_about(codes):
        writer.write(signed_line("audit", audit_row(record)))
        result.archived["audit records"] = result.archived.get("audit records", 0) + 1
    writer.make_durable()  # on disk before a row of it is deleted
    _delete(groups)


def _referenced_by_kept(approval: ApprovalRequest, before: datetime) -> bool:
    taken_by = ApprovalRequest.objects.filter(approved_as_suggested_on=approval).first()
    return taken_by is not None and not (
        taken_by.status in TERMINAL_STATUSES
        and taken_by.decided_at is not None
        and taken_by.decided_at < before
    )


def _runs_emptied_by(batch: list[ApprovalRequest]) -> list[Run]:
    """Closed runs all of whose requests are in this batch (or gone already)."""
    run_ids = {a.run_id for a in batch if a.run_id is not None}
    if not run_ids:
        return []
    in_batch = {a.pk for a in batch}
    runs = []
    # Locked (in one order, so two runs wait rather than deadlock): a run whose requests two
    # concurrent batches hold is counted by the second after the first's delete, so the
    # second finds it emptied, where two counts at once would each see the other's requests
    # and leave it behind for good.
    locked = Run.objects.select_for_update().filter(pk__in=run_ids, closed_at__isnull=False)
    for run in locked.order_by("pk"):
        remaining = set(run.approval_requests.values_list("pk", flat=True)) - in_batch
        if not remaining:
            runs.append(run)
    return runs


# An archive that does not verify (the checks are approvals.audit's signed_lines_verify).
ArchiveProblem = SignedLinesProblem


def archive_verify(path: Path) -> str:
    """Check an archive offline; a summary when it holds, else ArchiveProblem naming why.

    An audit archive (`audit_archive`) is checked by its own, streaming verifier, which also
    walks the chain's links; `audit_verify --archive` matches it to the database as well.
    """
    if _is_audit_archive(path):
        return f"{audit_archive_verify(path)} (an audit archive)"
    counts: dict[str, int] = {}

    def count(kind: str, data: dict[str, Any]) -> None:
        if kind == "row":
            counts[data["model"]] = counts.get(data["model"], 0) + 1

    try:
        with gzip.open(path, "rb") as lines:
            verified = signed_lines_verify(lines, on_entry=count)
    except (OSError, EOFError) as error:
        raise ArchiveProblem(f"not a whole archive ({error})") from None
    rows = ", ".join(f"{count} {label}" for label, count in sorted(counts.items()))
    return (
        f"{rows or 'no rows'}, {len(verified.audit)} audit records verified, "
        f"anchor {verified.anchor}"
    )


def _is_audit_archive(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as lines:
            first = json.loads(lines.readline())
        return first["kind"] == "archive" and first["data"]["format"] == AUDIT_ARCHIVE_FORMAT
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return False  # the general check says what is wrong with it


def default_archive_path(before: datetime) -> Path:
    from django.conf import settings
    from django.utils import timezone

    return Path(settings.ARCHIVE_DIR) / (
        f"decided-before-{before:%Y%m%dT%H%M%SZ}-{timezone.now():%Y%m%dT%H%M%S%fZ}.jsonl.gz"
    )


def approvals_archive_past_retention() -> ArchiveResult | None:
    """Beat's daily run: archive what is older than RETENTION_DAYS; None when off or nothing."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    if settings.RETENTION_DAYS <= 0:
        return None
    before = timezone.now() - timedelta(days=settings.RETENTION_DAYS)
    if not decided_before(before).exists():
        return None
    return approvals_archive_decided(before=before, path=default_archive_path(before))
