"""Verifying the audit chain (`manage.py audit_verify`) and anchoring it outside the database.

Walks the records in sequence order, re-computing each hash under the key it names, and reports
the first break; anchors (`manage.py audit_anchor`) catch a trail cut short at its end.
"""

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
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
from approvals.audit.models import AuditChainHead, AuditRecord
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

    @property
    def ok(self) -> bool:
        return self.first_break is None


class _ChainWalk:
    """Checks records one after another, in sequence order, and remembers the first break."""

    def __init__(self, keys: AuditKeys, *, sequence: int = 1, prev_hash: str = GENESIS_HASH):
        self.keys = keys
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
        return ChainVerification(self.checked, self.expected_prev, first_break)


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainVerification:
    """Walk the whole chain in sequence order, streaming, and report the first record that
    does not fit: a gap (deleted), a wrong link (inserted or reordered), a wrong hash (edited, or
    signed without the key), or an unkeyed record where only keyed ones may be. Then the end:
    the head must name the last record, and an empty chain is a wiped one if the console has
    history the trail would have recorded.
    """
    walk = _ChainWalk(audit_keys())
    records: Iterator[AuditRecord] = AuditRecord.objects.order_by("sequence").iterator(
        chunk_size=chunk_size
    )
    if first_break := walk.walk(records):
        return walk.result(first_break)

    head = AuditChainHead.objects.filter(pk=1).first()
    last_sequence = walk.expected_sequence - 1
    if not walk.checked and _history_exists():
        problem = (
            "the trail is empty, or has no head, but approval requests exist: every request "
            "is recorded as it is created, so the trail was wiped"
        )
        return walk.result(ChainBreak(0, None, problem))
    if walk.checked and not walk.keyed:
        return walk.result(ChainBreak(last_sequence, None, _NOTHING_KEYED))
    if head is None and walk.checked:
        problem = "the chain head is missing, so records cut off the end would go unnoticed"
        return walk.result(ChainBreak(last_sequence, None, problem))
    if head is not None and (head.last_sequence, head.last_hash) != (
        last_sequence,
        walk.expected_prev,
    ):
        problem = (
            f"the chain ends at #{last_sequence} but its head records #{head.last_sequence}: "
            "records were removed from, or added to, the end"
        )
        return walk.result(ChainBreak(head.last_sequence, None, problem))
    return walk.result(None)


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
    walk = _ChainWalk(
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


def audit_anchors_check(anchors: Iterable[AuditAnchor]) -> str | None:
    """The first anchor the stored chain no longer holds, and why; None when it holds them all.

    Run after audit_chain_verify: a verified chain's records all link, so one held anchor vouches
    for every record before it.
    """
    last_sequence = (
        AuditRecord.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    )
    for anchor in anchors:
        stored = (
            AuditRecord.objects.filter(sequence=anchor.sequence)
            .values_list("hash", flat=True)
            .first()
        )
        if problem := anchor.problem(stored_hash=stored, last_sequence=last_sequence):
            return problem
    return None


# --- Signed exports: JSON Lines closed by a SHA-256, carrying the audit records they rest on ---


class SignedLinesProblem(Exception):
    """Why an export (a retention archive, a run's record) does not verify."""


@dataclass(frozen=True)
class SignedLines:
    audit: list[AuditRecord]
    anchor: AuditAnchor | None


def signed_lines_verify(
    lines: Iterable[bytes], *, on_entry: Callable[[str, dict[str, Any]], None]
) -> SignedLines:
    """Check an export written as JSON Lines of {"kind", "data"} (other keys allowed), offline:

    - the last line is {"kind": "end", "data": {"sha256": ...}} over every line before it, so a
      file cut short or edited is caught;
    - every {"kind": "audit"} line is an audit record (every hashed field and its hash) that
      recomputes under this console's audit keys, and none lies beyond the export's
      {"kind": "anchor"} (the chain's newest SEQ:HASH when it was written; `audit_verify
      --anchor` checks the live chain still holds it).

    Every other line goes to `on_entry(kind, data)`, in order, to be checked or counted by the
    caller (which may raise SignedLinesProblem itself). Needs no database.
    """
    digest = hashlib.sha256()
    audit: list[AuditRecord] = []
    anchor: AuditAnchor | None = None
    ended = False
    try:
        for number, line in enumerate(lines, start=1):
            if ended:
                raise SignedLinesProblem(f"line {number}: data after the closing checksum")
            entry = json.loads(line)
            kind, data = entry["kind"], entry["data"]
            if kind == "end":
                if data["sha256"] != digest.hexdigest():
                    raise SignedLinesProblem("the closing SHA-256 does not match: lines changed")
                ended = True
                continue
            digest.update(line)
            if kind == "audit":
                data["created_at"] = datetime.fromisoformat(data["created_at"])
                audit.append(AuditRecord(**data))
            elif kind == "anchor":
                anchor = AuditAnchor.parse(data["anchor"]) if data["anchor"] else None
            else:
                on_entry(kind, data)
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SignedLinesProblem(f"not a whole export ({error})") from None
    if not ended:
        raise SignedLinesProblem("no closing checksum: the export was cut short")
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
