"""Verifying the audit chain (`manage.py audit_verify`) and anchoring it outside the database.

Walks the records in sequence order, re-computing each hash under the key it names, and reports
the first break; anchors (`manage.py audit_anchor`) catch a trail cut short at its end.
"""

import hmac
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps

from approvals.audit.keys import (
    GENESIS_HASH,
    AuditKeys,
    UnknownAuditKey,
    audit_keys,
    audit_record_digest,
)
from approvals.audit.models import AuditChainHead, AuditPruneCheckpoint, AuditRecord
from approvals.audit.signed_lines import SignedEntries, SignedLinesProblem
from approvals.audit.trail import AuditAction


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    record_id: int | None
    reason: str


@dataclass(frozen=True)
class ChainVerification:
    checked: int
    last_hash: str
    first_break: ChainBreak | None
    last_sequence: int = 0
    # The record the walk started after: 0 from the genesis, else a prune checkpoint's.
    starts_after: int = 0

    @property
    def ok(self) -> bool:
        return self.first_break is None


class ChainWalk:
    """Checks records one after another, in sequence order, and remembers the first break."""

    def __init__(self, keys: AuditKeys, *, sequence: int = 1, prev_hash: str = GENESIS_HASH):
        self.keys = keys
        self.starts_after = sequence - 1
        self.expected_sequence = sequence
        self.expected_prev = prev_hash
        self.keyed = False
        self.checked = 0

    def problem_with(self, record: AuditRecord) -> str | None:
        if record.sequence != self.expected_sequence:
            return (
                f"expected record #{self.expected_sequence} but found #{record.sequence}: "
                "records are missing before it"
            )
        if record.prev_hash != self.expected_prev:
            return "its prev_hash does not match the previous record's hash"
        if not record.key_id and self.keyed:
            return "it is unkeyed but the chain was keyed before it: it was written without the key"
        first_keyed = record.key_id and not self.keyed and record.sequence > 1
        if first_keyed and record.action != AuditAction.AUDIT_KEYED:
            return "the first keyed record after unkeyed ones must mark the transition"
        try:
            digest = audit_record_digest(record, self.keys)
        except UnknownAuditKey:
            return (
                f"it is signed with key {record.key_id}, which this console does not have "
                "(keep retired keys: docs/audit.md)"
            )
        # As bytes: compare_digest refuses str with non-ASCII characters (a forged file's).
        if not hmac.compare_digest(digest.encode(), str(record.hash).encode()):
            return "its content does not match its hash: it was edited"
        return None

    def walk(self, records: Iterable[AuditRecord]) -> ChainBreak | None:
        for record in records:
            if problem := self.problem_with(record):
                return ChainBreak(record.sequence, record.pk, problem)
            self.expected_sequence += 1
            self.expected_prev = record.hash
            self.keyed = self.keyed or bool(record.key_id)
            self.checked += 1
        return None

    def result(self, first_break: ChainBreak | None) -> ChainVerification:
        return ChainVerification(
            self.checked,
            self.expected_prev,
            first_break,
            last_sequence=self.expected_sequence - 1,
            starts_after=self.starts_after,
        )


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainVerification:
    """Walk the whole chain in sequence order, streaming, and report the first record that
    does not fit: a gap (deleted), a wrong link (inserted or reordered), a wrong hash (edited, or
    signed without the key), or an unkeyed record where only keyed ones may be. Then the end:
    the head must name the last record, and an empty chain is a wiped one if the console has
    history the trail would have recorded.

    After a prune (`manage.py audit_archive`) the walk starts at the newest checkpoint: the first
    remaining record must link to its hash, no record at or before it may be left, and a signed
    `audit.pruned` record after it must vouch for it (else the chain's start was cut off by
    someone else than the prune).
    """
    checkpoint = AuditPruneCheckpoint.objects.order_by("-sequence").first()
    if checkpoint is None:
        walk = ChainWalk(audit_keys())
    else:
        walk = ChainWalk(audit_keys(), sequence=checkpoint.sequence + 1, prev_hash=checkpoint.hash)
        walk.keyed = checkpoint.keyed
        leftover = AuditRecord.objects.filter(sequence__lte=checkpoint.sequence).first()
        if leftover is not None:
            problem = (
                f"it lies at or before the prune checkpoint #{checkpoint.sequence}, whose "
                "records were archived and deleted: it was inserted since"
            )
            return walk.result(ChainBreak(leftover.sequence, leftover.pk, problem))
    records: Iterator[AuditRecord] = (
        AuditRecord.objects.filter(sequence__gt=walk.starts_after)
        .order_by("sequence")
        .iterator(chunk_size=chunk_size)
    )
    if first_break := walk.walk(records):
        return walk.result(first_break)
    if problem_break := _chain_end_problem(walk):
        return walk.result(problem_break)
    if checkpoint is not None and not _checkpoint_vouched(checkpoint):
        problem = (
            f"the prune checkpoint at #{checkpoint.sequence} is not vouched for by a signed "
            "audit.pruned record after it: the records before the live chain were removed "
            "without `audit_archive`, or its checkpoint was edited"
        )
        return walk.result(ChainBreak(checkpoint.sequence + 1, None, problem))
    return walk.result(None)


def _chain_end_problem(walk: "ChainWalk") -> ChainBreak | None:
    head = AuditChainHead.objects.filter(pk=1).first()
    last_sequence = walk.expected_sequence - 1
    if not walk.checked and _history_exists():
        problem = (
            "the trail is empty, or has no head, but approval requests exist: every request "
            "is recorded as it is created, so the trail was wiped"
        )
        return ChainBreak(0, None, problem)
    if walk.checked and not walk.keyed:
        return ChainBreak(last_sequence, None, _NOTHING_KEYED)
    if head is None and walk.checked:
        problem = "the chain head is missing, so records cut off the end would go unnoticed"
        return ChainBreak(last_sequence, None, problem)
    if head is not None and (head.last_sequence, head.last_hash) != (
        last_sequence,
        walk.expected_prev,
    ):
        problem = (
            f"the chain ends at #{last_sequence} but its head records #{head.last_sequence}: "
            "records were removed from, or added to, the end"
        )
        return ChainBreak(head.last_sequence, None, problem)
    return None


def audit_prune_vouch(checkpoint: AuditPruneCheckpoint) -> dict[str, Any]:
    """What the prune's signed audit.pruned record says about its checkpoint, word for word."""
    return {
        "first_sequence": checkpoint.first_sequence,
        "through_sequence": checkpoint.sequence,
        "through_hash": checkpoint.hash,
        "records": checkpoint.records,
        "archive_name": checkpoint.archive_name,
        "archive_sha256": checkpoint.archive_sha256,
    }


def _checkpoint_vouched(checkpoint: AuditPruneCheckpoint) -> bool:
    # The record is in the live chain, verified by the walk before this is asked.
    vouching = AuditRecord.objects.filter(
        action=AuditAction.AUDIT_PRUNED,
        sequence__gt=checkpoint.sequence,
        context__through_sequence=checkpoint.sequence,
    ).values_list("context", flat=True)
    return audit_prune_vouch(checkpoint) in list(vouching[:5])


_NOTHING_KEYED = (
    "no record is keyed, so anyone with write access to the database could have rewritten "
    "them all (right after upgrading, the next record appended keys the chain)"
)


def _history_exists() -> bool:
    # Approval requests, because each one is created in the same transaction as its
    # request.submitted record, on every path (API, batched intake, services), so none can
    # exist on an intact trail that has no records. Users and agents are not evidence: they can
    # be made by createsuperuser, fixtures or the shell without passing through the services.
    # Looked up by name: the audit package sits below the models it records.
    return apps.get_model("approvals", "ApprovalRequest").objects.exists()


def audit_records_verify(records: Iterable[AuditRecord]) -> ChainVerification:
    """Verify records read from elsewhere (an export), in sequence order, with this console's keys.

    A run starting at #1 is checked from the genesis; one starting later (a filtered export)
    from its first record's own link, which its hash covers. Gaps break the run: export
    unfiltered to check everything. The end cannot be checked here: anchors do that.
    """
    records = iter(records)
    first = next(records, None)
    if first is None:
        return ChainVerification(0, GENESIS_HASH, None)
    from_start = first.sequence == 1
    walk = ChainWalk(
        audit_keys(),
        sequence=first.sequence,
        prev_hash=GENESIS_HASH if from_start else first.prev_hash,
    )
    # Mid-chain, whether the part before was keyed shows in the first record.
    walk.keyed = not from_start and bool(first.key_id)
    if first_break := walk.walk(itertools.chain([first], records)):
        return walk.result(first_break)
    if not walk.keyed:
        return walk.result(ChainBreak(walk.expected_sequence - 1, None, _NOTHING_KEYED))
    return walk.result(None)


@dataclass(frozen=True)
class AuditAnchor:
    """A record's place and hash, written down outside the database (`manage.py audit_anchor`).

    Whoever controls the database could cut records off the end of the chain and move the head
    back with them (after disabling its guard); no key is needed for that. An anchor kept
    elsewhere is what still remembers how far the chain went.
    """

    sequence: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "AuditAnchor":
        sequence, _, digest = text.strip().partition(":")
        if not sequence.isdigit() or int(sequence) < 1 or len(digest) != 64:
            raise ValueError(f"an anchor is SEQ:HASH (64 hex digits), got {text!r}")
        return cls(int(sequence), digest.lower())

    def __str__(self) -> str:
        return f"{self.sequence}:{self.hash}"

    def problem(self, *, stored_hash: str | None, last_sequence: int) -> str | None:
        """Why a chain ending at `last_sequence`, holding `stored_hash` at the anchor's place,
        does not hold the anchor; None when it does."""
        if self.sequence > last_sequence:
            return (
                f"the chain ends at #{last_sequence}, before the anchor's #{self.sequence}: "
                "records were cut off the end since the anchor was taken"
            )
        if stored_hash is None or not hmac.compare_digest(stored_hash.encode(), self.hash.encode()):
            return (
                f"record #{self.sequence} no longer has the anchor's hash: the chain was "
                "rewritten since the anchor was taken"
            )
        return None


def audit_anchor_current() -> tuple[AuditAnchor, str] | None:
    """The newest record's anchor and the id of the key that signed it; None while empty."""
    last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash", "key_id").first()
    if last is None:
        return None
    return AuditAnchor(last.sequence, last.hash), last.key_id


@dataclass(frozen=True)
class AnchorsCheck:
    # The first anchor the chain (or an archive of it) no longer holds, and why.
    problem: str | None
    # What became of anchors older than the live chain: held by the checkpoint or an archive,
    # or not checked for want of the archive that holds them.
    archived: list[str]


def audit_anchors_check(
    anchors: Iterable[AuditAnchor], *, archived_hashes: Mapping[int, str] | None = None
) -> AnchorsCheck:
    """Whether the stored chain still holds every anchor.

    Run after audit_chain_verify: a verified chain's records all link, so one held anchor vouches
    for every record before it. An anchor at or before the newest prune checkpoint lies in
    archived history: it is checked against the checkpoint (an anchor at the cut itself) or
    against `archived_hashes` (sequence to hash, from archives verified and matched to their
    checkpoints: approvals.audit.archive), and is otherwise reported as not checked, not failed.
    """
    archived_hashes = archived_hashes or {}
    checkpoint = AuditPruneCheckpoint.objects.order_by("-sequence").first()
    last_sequence = (
        AuditRecord.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    )
    notes: list[str] = []
    for anchor in anchors:
        if checkpoint is not None and anchor.sequence <= checkpoint.sequence:
            stored = _archived_hash(anchor, checkpoint, archived_hashes, notes)
            if stored is None:
                continue
        else:
            stored = (
                AuditRecord.objects.filter(sequence=anchor.sequence)
                .values_list("hash", flat=True)
                .first()
            )
        if problem := anchor.problem(stored_hash=stored, last_sequence=last_sequence):
            return AnchorsCheck(problem, notes)
    return AnchorsCheck(None, notes)


def _archived_hash(
    anchor: AuditAnchor,
    checkpoint: AuditPruneCheckpoint,
    archived_hashes: Mapping[int, str],
    notes: list[str],
) -> str | None:
    """The hash an anchor in archived history is checked against; None (and a note) if there is
    nothing to check it against here."""
    if anchor.sequence == checkpoint.sequence:
        notes.append(f"anchor #{anchor.sequence} is the prune checkpoint: checked against it")
        return checkpoint.hash
    if anchor.sequence in archived_hashes:
        notes.append(f"anchor #{anchor.sequence} lies in archived history: checked in its archive")
        return archived_hashes[anchor.sequence]
    holder = AuditPruneCheckpoint.objects.filter(
        first_sequence__lte=anchor.sequence, sequence__gte=anchor.sequence
    ).first()
    where = f" ({holder.archive_name})" if holder else ""
    notes.append(
        f"anchor #{anchor.sequence} lies in archived history (pruned through "
        f"#{checkpoint.sequence}), NOT checked: give --archive with the archive that holds "
        f"it{where}"
    )
    return None


# --- Signed exports: JSON Lines closed by a SHA-256, carrying the audit records they rest on ---


@dataclass(frozen=True)
class SignedLines:
    audit: list[AuditRecord]
    anchor: AuditAnchor | None


def audit_record_from_export(row: dict[str, Any]) -> AuditRecord:
    """A record as an export or archive line carries it (approvals.audit.export), unsaved."""
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return AuditRecord(**row)


def signed_lines_verify(
    lines: Iterable[bytes], *, on_entry: Callable[[str, dict[str, Any]], None]
) -> SignedLines:
    """Check an export written as JSON Lines of {"kind", "data"} (other keys allowed), offline:

    - the last line is {"kind": "end", "data": {"sha256": ...}} over every line before it, so a
      file cut short or edited is caught (approvals.audit.signed_lines);
    - every {"kind": "audit"} line is an audit record (every hashed field and its hash) that
      recomputes under this console's audit keys, and none lies beyond the export's
      {"kind": "anchor"} (the chain's newest SEQ:HASH when it was written; `audit_verify
      --anchor` checks the live chain still holds it).

    Every other line goes to `on_entry(kind, data)`, in order, to be checked or counted by the
    caller (which may raise SignedLinesProblem itself). Needs no database.
    """
    audit: list[AuditRecord] = []
    anchor: AuditAnchor | None = None
    try:
        for kind, data in SignedEntries(lines):
            if kind == "audit":
                audit.append(audit_record_from_export(data))
            elif kind == "anchor":
                anchor = AuditAnchor.parse(data["anchor"]) if data["anchor"] else None
            else:
                on_entry(kind, data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SignedLinesProblem(f"not a whole export ({error})") from None
    keys = audit_keys()
    for record in audit:
        try:
            recomputed = audit_record_digest(record, keys)
        except UnknownAuditKey as error:
            raise SignedLinesProblem(
                f"audit record #{record.sequence}: unknown key {error}"
            ) from None
        if not hmac.compare_digest(recomputed.encode(), str(record.hash).encode()):
            raise SignedLinesProblem(f"audit record #{record.sequence} does not match its hash")
        if anchor is None or record.sequence > anchor.sequence:
            raise SignedLinesProblem(f"audit record #{record.sequence} lies beyond the anchor")
    return SignedLines(audit=audit, anchor=anchor)
