"""Archiving and pruning the audit trail's oldest records (`manage.py audit_archive`).

The trail is append-only, so without this it grows without bound. A prune:

1. finds the cut: the last record before a date, or a given sequence; never the chain's newest
   record (the head names it), never one younger than AUDIT_ARCHIVE_MIN_AGE_DAYS;
2. writes every record after the previous prune's cut (or from #1) through the cut to an archive
   file (approvals.audit.archive), fsync'd, under a pending name;
3. reads the file back and verifies it: whole, every record recomputing under the audit keys,
   the chain unbroken from the previous cut to this one;
4. only then, in one transaction: records a checkpoint (the cut's sequence and hash, the
   archive's name and SHA-256), deletes exactly the archived records through the guard's one
   opening (approvals.audit.guards.audit_prune_allowed), and appends a signed `audit.pruned`
   record repeating the checkpoint, which is what vouches for it (audit_verify);
5. gives the archive its name: a file by an archive's name is always a committed prune's.

Anything that goes wrong before the commit deletes nothing. A process killed between 2 and 5
leaves the pending file, which the next prune into that directory settles first: named if its
prune committed, removed if not (approvals.audit.archive.audit_archive_pending_settle). Prunes
into one directory take turns; one that finds another at work there does nothing.

Appends go on meanwhile: they only ever add records after the head, which the prune never
touches, and the prune takes the head's lock only for its closing append, as every append does,
so the trail is not held up for as long as the delete takes.

Two prunes at once into different directories (the command while beat's runs): the one that
commits first wins; the other's delete finds other rows than its archive holds and rolls back,
and it removes the archive it wrote, whose records are all still in the database: no record is
archived twice.

The command and beat (when AUDIT_ARCHIVE_AFTER_DAYS is set, `audit_archive_past_age`: up to the
last record older than that, into ARCHIVE_DIR) both go in chunks of at most
AUDIT_ARCHIVE_CHUNK_RECORDS records (`audit_archive_in_chunks`), each a prune of its own (its
archive, its checkpoint, its `audit.pruned` record, its transaction): a year of records behind
a cut is deleted in steps of bounded size rather than in one transaction that would hold its
locks and grow the write-ahead log for as long as the whole delete takes, and a run stopped
half-way keeps the chunks it committed. Each chunk starts where the previous one's checkpoint
ended, so the archives verify one by one against their checkpoints and the chain verifies from
the newest, as after prunes run on separate days; a run started again with the same cut goes
on from the newest checkpoint.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from approvals.audit.archive import (
    AuditArchive,
    AuditArchiveDirectoryBusy,
    ChainPoint,
    audit_archive_directory_locked,
    audit_archive_pending_path,
    audit_archive_pending_settle,
    audit_archive_publish,
    audit_archive_verify,
    audit_archive_write,
)
from approvals.audit.guards import audit_prune_allowed
from approvals.audit.models import AuditChainHead, AuditPruneCheckpoint, AuditRecord
from approvals.audit.signed_lines import SignedLinesProblem
from approvals.audit.trail import AuditAction, AuditActor, audit_record
from approvals.audit.verification import audit_prune_vouch

logger = logging.getLogger(__name__)


class AuditPruneRefused(Exception):
    """Why nothing was pruned (and nothing deleted): the cut, its age, the file, the archive."""


class AuditPruneNothingToCut(AuditPruneRefused):
    """No record before the date is left to archive: everything that old is pruned already."""


class AuditPruneBusy(AuditPruneRefused):
    """Another prune is writing into the same directory: this one did nothing."""


class AuditArchiveUnnamed(Exception):
    """The prune committed, but its archive could not be given its name: it is still under its
    pending name, which the next prune into that directory settles."""


@dataclass(frozen=True)
class AuditPruneResult:
    checkpoint: AuditPruneCheckpoint
    archive: AuditArchive


def audit_prune_checkpoint_latest() -> AuditPruneCheckpoint | None:
    """The newest prune's checkpoint: where the live chain starts; None if never pruned."""
    return AuditPruneCheckpoint.objects.order_by("-sequence").first()


def audit_prune_min_age() -> timedelta:
    return timedelta(days=settings.AUDIT_ARCHIVE_MIN_AGE_DAYS)


def audit_cut_find(
    *, before: datetime | None = None, through_sequence: int | None = None
) -> AuditRecord:
    """The record a prune would cut at: the last one created before `before`, or the one at
    `through_sequence`; AuditPruneRefused saying why there is none to cut at."""
    pruned_through = _pruned_through()
    newest = (
        AuditRecord.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    )
    youngest_allowed = timezone.now() - audit_prune_min_age()
    if before is not None:
        if before > youngest_allowed:
            raise AuditPruneRefused(
                f"{before.isoformat()} is less than AUDIT_ARCHIVE_MIN_AGE_DAYS "
                f"({settings.AUDIT_ARCHIVE_MIN_AGE_DAYS}) days ago: records that young are kept"
            )
        cut = (
            AuditRecord.objects.filter(created_at__lt=before, sequence__gt=pruned_through)
            .exclude(sequence=newest)
            .order_by("-sequence")
            .first()
        )
        if cut is None:
            raise AuditPruneNothingToCut(
                f"no record before {before.isoformat()} is left to archive "
                f"(pruned through #{pruned_through} already; the newest record always stays)"
            )
        return cut
    if through_sequence is None:
        raise AuditPruneRefused("give a date or a sequence number to archive up to")
    return _cut_at_sequence(through_sequence, pruned_through, newest, youngest_allowed)


def _cut_at_sequence(
    sequence: int, pruned_through: int, newest: int, youngest_allowed: datetime
) -> AuditRecord:
    if sequence < 1:
        raise AuditPruneRefused(f"there is no record #{sequence}: sequences start at #1")
    if sequence <= pruned_through:
        raise AuditPruneRefused(
            f"#{sequence} is archived and pruned already (through #{pruned_through})"
        )
    if sequence >= newest:
        raise AuditPruneRefused(
            f"#{sequence} is not before the chain's newest record (#{newest}): the newest "
            "record stays, as the chain head names it"
        )
    cut = AuditRecord.objects.filter(sequence=sequence).first()
    if cut is None:
        raise AuditPruneRefused(f"there is no record #{sequence} (run audit_verify)")
    if cut.created_at > youngest_allowed:
        raise AuditPruneRefused(
            f"record #{sequence} is from {cut.created_at.isoformat()}, younger than "
            f"AUDIT_ARCHIVE_MIN_AGE_DAYS ({settings.AUDIT_ARCHIVE_MIN_AGE_DAYS}) days"
        )
    return cut


def audit_archive_and_prune(
    *, cut: AuditRecord, path: Path, by: str = "manage.py audit_archive"
) -> AuditPruneResult:
    """Archive every record after the previous prune through `cut` to a new file at `path`,
    verify the file, then delete exactly those records and record the checkpoint (module
    docstring), signed by `by`. AuditPruneRefused, with nothing deleted, if any step before the
    commit fails; AuditArchiveUnnamed if only the last step, naming the file, did."""
    try:
        with audit_archive_directory_locked(path.parent):
            audit_archive_pending_settle(path.parent)
            return _archive_and_prune(cut=cut, path=path, by=by)
    except AuditArchiveDirectoryBusy as busy:
        raise AuditPruneBusy(f"{busy}; nothing was written or deleted") from None


def _archive_and_prune(*, cut: AuditRecord, path: Path, by: str) -> AuditPruneResult:
    previous = audit_prune_checkpoint_latest()
    after = ChainPoint.at_checkpoint(previous)
    if cut.sequence <= after.sequence:
        raise AuditPruneRefused(f"#{cut.sequence} is archived and pruned already")
    through = ChainPoint(cut.sequence, cut.hash, _keyed_through(cut))
    archived = AuditRecord.objects.filter(sequence__gt=after.sequence, sequence__lte=cut.sequence)
    pending = audit_archive_pending_path(path)
    if path.exists():
        raise AuditPruneRefused(f"{path} exists: an archive is never overwritten")
    try:
        audit_archive_write(path=pending, after=after, through=through, records=archived)
    except FileExistsError:
        raise AuditPruneRefused(
            f"{pending} exists, kept because a prune checkpoint names its archive (see the log)"
        ) from None
    except OSError as error:
        raise AuditPruneRefused(f"writing {path} failed ({error}); nothing was deleted") from None
    try:
        # Read back from the disk, not trusted from memory: what is deleted next must be there.
        archive = audit_archive_verify(pending)
    except SignedLinesProblem as problem:
        pending.unlink(missing_ok=True)
        raise AuditPruneRefused(
            f"{path} does not verify after writing ({problem}); nothing was deleted"
        ) from None
    if (archive.after, archive.through) != (after, through):
        pending.unlink(missing_ok=True)
        raise AuditPruneRefused(f"{path} holds another run of records; nothing was deleted")
    try:
        checkpoint = _prune(archive, path, by=by)
    except AuditPruneRefused as refused:
        # Raised before the commit, so rolled back: every record the file holds is still in the
        # database, and the prune that won archived them or a later one will. Kept, it would be a
        # second archive of them. (Not on a database error: the commit may have happened; the
        # next prune's settling tells which.)
        pending.unlink(missing_ok=True)
        raise AuditPruneRefused(f"{refused}; {path} was removed") from None
    try:
        audit_archive_publish(pending, path)
    except OSError as error:
        raise AuditArchiveUnnamed(
            f"pruned through #{checkpoint.sequence}, but naming its archive {path} failed "
            f"({error}): it is {pending} until the next prune into {path.parent}"
        ) from None
    archive.path = path
    return AuditPruneResult(checkpoint, archive)


def _keyed_through(cut: AuditRecord) -> bool:
    # Keying only ever starts, so the chain is keyed at the cut if the cut record is.
    return bool(cut.key_id)


@transaction.atomic
def _prune(archive: AuditArchive, path: Path, *, by: str) -> AuditPruneCheckpoint:
    through = archive.through
    try:
        with transaction.atomic():
            checkpoint = AuditPruneCheckpoint.objects.create(
                sequence=through.sequence,
                hash=through.hash,
                keyed=through.keyed,
                first_sequence=archive.after.sequence + 1,
                records=archive.records,
                archive_name=str(path)[-400:],
                archive_sha256=archive.sha256,
                created_at=timezone.now(),
            )
    except IntegrityError:
        # Another prune cut at the same record and committed first (its checkpoint's unique
        # sequence made this insert wait for it).
        raise AuditPruneRefused(
            f"another prune ran meanwhile, through #{through.sequence}; nothing was deleted"
        ) from None
    with audit_prune_allowed(through_sequence=through.sequence):
        deleted = _records_delete(after=archive.after.sequence, through=through.sequence)
    if deleted != archive.records:
        # Another prune got there first (or the chain has gaps): roll back, delete nothing.
        raise AuditPruneRefused(
            f"{deleted} records were there to delete, not the {archive.records} archived; "
            "nothing was deleted"
        )
    # Under the head's lock, as every append: a prune that committed meanwhile shows here.
    AuditChainHead.objects.select_for_update().filter(pk=1).first()
    newest = audit_prune_checkpoint_latest()
    if newest is None or newest.pk != checkpoint.pk:
        raise AuditPruneRefused("another prune ran meanwhile; nothing was deleted")
    audit_record(
        action=AuditAction.AUDIT_PRUNED,
        actor=AuditActor.system(by),
        object_type="approvals.auditrecord",
        context=audit_prune_vouch(checkpoint),
    )
    return checkpoint


def _records_delete(*, after: int, through: int) -> int:
    # One statement, not the ORM's delete(): that may read every row first to run signals.
    table = connection.ops.quote_name(AuditRecord._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE sequence > %s AND sequence <= %s",  # noqa: S608 (our table)
            [after, through],
        )
        return cursor.rowcount


def audit_archive_path(*, after: int, through: int) -> Path:
    """A new file in ARCHIVE_DIR for records after `after` through `through`; the time makes
    the name of each attempt its own, so a file a failed attempt left never stops the next."""
    written = timezone.now()
    return Path(settings.ARCHIVE_DIR) / (
        f"audit-{after + 1}-to-{through}-{written:%Y%m%dT%H%M%S%fZ}.jsonl.gz"
    )


BEAT_ACTOR = "beat: audit archive"


def audit_archive_past_age() -> list[AuditPruneResult]:
    """Beat's run: archive and prune the records older than AUDIT_ARCHIVE_AFTER_DAYS into
    ARCHIVE_DIR, as `manage.py audit_archive --before` would, in chunks of at most
    AUDIT_ARCHIVE_CHUNK_RECORDS (module docstring); a result a chunk, none when it is off,
    nothing that old is left, or another prune is writing into ARCHIVE_DIR (that one carries
    on). AuditPruneRefused as the command's (a prune that lost a race included): the chunks
    before it stay pruned.

    The setting is at least AUDIT_ARCHIVE_MIN_AGE_DAYS (console.settings refuses to start
    otherwise), and audit_cut_find checks the age again, as for the command.
    """
    if settings.AUDIT_ARCHIVE_AFTER_DAYS <= 0:
        return []
    results: list[AuditPruneResult] = []
    try:
        # Settled even when nothing is due: a killed run's committed archive gets its name.
        directory = Path(settings.ARCHIVE_DIR)
        with audit_archive_directory_locked(directory):
            audit_archive_pending_settle(directory)
        before = timezone.now() - timedelta(days=settings.AUDIT_ARCHIVE_AFTER_DAYS)
        cut = audit_cut_find(before=before)
        chunks = audit_archive_in_chunks(cut=cut, path_for=_beat_archive_path, by=BEAT_ACTOR)
        for result in chunks:
            results.append(result)
    except AuditPruneNothingToCut:
        pass
    except (AuditArchiveDirectoryBusy, AuditPruneBusy) as busy:
        logger.info("Audit archive: %s; this run leaves it to that one.", busy)
    return results


def _beat_archive_path(after: int, through: int) -> Path:
    return audit_archive_path(after=after, through=through)


def audit_archive_in_chunks(
    *, cut: AuditRecord, path_for: Callable[[int, int], Path], by: str
) -> Iterator[AuditPruneResult]:
    """Archive and prune every record after the newest checkpoint through `cut`, in chunks of
    at most AUDIT_ARCHIVE_CHUNK_RECORDS, each a prune of its own into `path_for(after,
    through)` (module docstring); each chunk's result as soon as it has committed, so the
    caller can say how far it got. Stopped anywhere (AuditPruneRefused, Ctrl-C, a kill), the
    chunks before stay pruned, one stopped half-way is undone or settled as any prune's, and
    a new call with the same cut goes on from the newest checkpoint: each chunk starts where
    one committed, so nothing is archived twice or skipped."""
    while (pruned_through := _pruned_through()) < cut.sequence:
        chunk_cut = _chunk_cut(after=pruned_through, through=cut.sequence)
        path = path_for(pruned_through, chunk_cut.sequence)
        yield audit_archive_and_prune(cut=chunk_cut, path=path, by=by)


def audit_archive_chunks_left(cut: AuditRecord) -> int:
    """How many chunks audit_archive_in_chunks takes (at most: sequences may have gaps)."""
    left = max(cut.sequence - _pruned_through(), 0)
    return -(-left // settings.AUDIT_ARCHIVE_CHUNK_RECORDS)


def _pruned_through() -> int:
    return getattr(audit_prune_checkpoint_latest(), "sequence", 0)


def _chunk_cut(*, after: int, through: int) -> AuditRecord:
    """The last record of the chunk after `after`: AUDIT_ARCHIVE_CHUNK_RECORDS on, or `through`."""
    last = min(after + settings.AUDIT_ARCHIVE_CHUNK_RECORDS, through)
    cut = (
        AuditRecord.objects.filter(sequence__gt=after, sequence__lte=last)
        .order_by("-sequence")
        .first()
    )
    if cut is None:
        raise AuditPruneRefused(f"no record from #{after + 1} to #{last} (run audit_verify)")
    return cut
