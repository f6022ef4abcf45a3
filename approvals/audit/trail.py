"""The audit trail: one append-only, hash-chained record per action that had an effect.

Everything that changes something calls `audit_record(...)` inside its own transaction, so the
record commits or rolls back with the change it describes. Who did it comes from the caller (a
reviewer, an agent, or None for the system); from where (client address, user agent, request id)
comes from the request context the middleware binds, so callers never pass it.

Tamper evidence: each record's `hash` is an HMAC-SHA256, under a key kept outside the database
(settings.AUDIT_HMAC_KEYS), over its canonical content plus the previous record's hash, and the
chain head row remembers the last one. Editing, deleting or inserting a record breaks the chain
at that point (`manage.py audit_verify`), and without the key nobody can re-sign what they
changed, not even the database's owner. The database refuses UPDATE, DELETE and TRUNCATE of the
records and any head change but forward (migrations 0004 and 0017); anchors printed by
`manage.py audit_anchor` and kept elsewhere catch a trail cut short. docs/audit.md has the rest.

Records from before keying (upgraded installs) were plain SHA-256 and have no key id. They are
accepted only as the chain's prefix: the first keyed record after them is an `audit.keyed`
record saying how many there were, and an unkeyed record after it breaks the chain.
"""

import hashlib
import hmac
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from agents.models import Agent
from approvals.audit.models import AuditActorType, AuditChainHead, AuditRecord
from console.copy_insert import ids_assign, rows_insert
from console.request_context import RequestContext, current_request_context

logger = logging.getLogger("approvals.audit")

GENESIS_HASH = "0" * 64


class AuditAction(models.TextChoices):
    """Every action name the audit trail knows, in one place.

    Not used as model choices on purpose: adding an action must not need a migration. Names are
    `<object>.<verb in the past tense>`. Features not merged yet have their names reserved here
    so their call sites only need `audit_record(action=AuditAction.X, ...)`.
    """

    # Approval requests (approvals.services)
    REQUEST_SUBMITTED = "request.submitted", "Request submitted"
    REQUEST_APPROVED = "request.approved", "Request approved"
    REQUEST_DENIED = "request.denied", "Request denied"
    REQUEST_EXPIRED = "request.expired", "Request expired"
    REQUEST_CANCELLED = "request.cancelled", "Request cancelled"
    # What happened after the decision (approvals.services.outcomes)
    OUTCOME_REPORTED = "request.outcome_reported", "Outcome reported"
    # Wired by the features that own them, at merge.
    POLICY_DECIDED = "policy.decided", "Policy decided a request"
    REQUEST_CLAIMED = "request.claimed", "Request claimed"
    REQUEST_UNCLAIMED = "request.unclaimed", "Request released"
    COMMENT_ADDED = "comment.added", "Comment added"
    VOTE_CAST = "request.vote_cast", "Approval vote cast"
    REQUEST_ESCALATED = "request.escalated", "Request escalated"
    ESCALATION_STEP_FIRED = "escalation.step_fired", "Escalation step fired"
    NOTIFICATION_SENT = "notification.sent", "Notification sent"
    NOTIFICATION_FAILED = "notification.failed", "Notification failed"
    NOTIFICATION_RETRIED = "notification.retried", "Notification retried"
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed"
    AGENT_HALTED = "agent.halted", "Agent halted"
    AGENT_RESUMED = "agent.resumed", "Agent resumed"
    RUN_HALTED = "run.halted", "Run halted"
    # The AAP provisioning surface (agents.aap)
    INSTANCE_PROVISIONED = "instance.provisioned", "AAP instance provisioned"
    INSTANCE_UPDATED = "instance.updated", "AAP instance updated"
    INSTANCE_DELETED = "instance.deleted", "AAP instance deleted"
    PROVISIONER_TOKEN_CREATED = "provisioner_token.created", "Provisioner token created"
    PROVISIONER_TOKEN_REVOKED = "provisioner_token.revoked", "Provisioner token revoked"
    # Agents and credentials (agents.services)
    AGENT_CREATED = "agent.created", "Agent created"
    CREDENTIAL_ISSUED = "credential.issued", "Credential issued"
    CREDENTIAL_REVOKED = "credential.revoked", "Credential revoked"
    # A reviewer's Slack account, linked after proof (approvals.slack_link)
    SLACK_LINKED = "slack.linked", "Slack account linked"
    SLACK_UNLINKED = "slack.unlinked", "Slack account unlinked"
    # Reviewer API tokens (approvals.reviewer_tokens)
    REVIEWER_TOKEN_ISSUED = "reviewer_token.issued", "Reviewer API token issued"
    REVIEWER_TOKEN_REVOKED = "reviewer_token.revoked", "Reviewer API token revoked"
    # Configuration changes through the Django admin (approvals.audit.admin)
    CONFIG_CREATED = "config.created", "Configuration created"
    CONFIG_CHANGED = "config.changed", "Configuration changed"
    CONFIG_DELETED = "config.deleted", "Configuration deleted"
    # Sign-in (approvals.audit.signals)
    AUTH_LOGIN = "auth.login", "Signed in"
    # Kept for records written before lockouts: single failures are no longer in the chain.
    AUTH_LOGIN_FAILED = "auth.login_failed", "Sign-in failed"
    AUTH_LOCKED_OUT = "auth.locked_out", "Sign-in locked out"
    AUTH_LOGOUT = "auth.logout", "Signed out"
    # Reading the trail is itself worth recording.
    AUDIT_EXPORTED = "audit.exported", "Audit log exported"
    # The first keyed record of an upgraded install: the records before it were unkeyed.
    AUDIT_KEYED = "audit.keyed", "Audit trail keyed"


@dataclass(frozen=True)
class AuditActor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "console") -> "AuditActor":
        return cls(type=AuditActorType.SYSTEM, label=label)

    @classmethod
    def anonymous(cls, label: str = "") -> "AuditActor":
        return cls(type=AuditActorType.ANONYMOUS, label=label[:200])

    @classmethod
    def of(
        cls, who: "AuditActor | AbstractBaseUser | AnonymousUser | Agent | None"
    ) -> "AuditActor":
        """A reviewer (user), an agent, or None for the console itself."""
        if who is None:
            return cls.system()
        if isinstance(who, AuditActor):
            return who
        if isinstance(who, Agent):
            return cls(type=AuditActorType.AGENT, id=str(who.code), label=who.name[:200])
        if not getattr(who, "is_authenticated", False):
            return cls.anonymous()
        return cls(type=AuditActorType.REVIEWER, id=str(who.pk), label=who.get_username()[:200])


def _jsonable(value: Any) -> Any:
    """The value as it will read back from a JSON column, so the hash survives the round trip."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# The fields the hash covers: all of them except the hash itself (and the surrogate id).
HASHED_FIELDS = (
    "sequence",
    "created_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "object_type",
    "object_id",
    "object_label",
    "ip_address",
    "user_agent",
    "request_id",
    "before",
    "after",
    "context",
    "prev_hash",
    "key_id",
)


class UnknownAuditKey(Exception):
    """A record names a key this console does not have (retired keys must be kept)."""


@dataclass(frozen=True)
class AuditKeys:
    signing_id: str
    signing_key: bytes
    by_id: dict[str, bytes]


def audit_key_id(key: bytes) -> str:
    # Derived from the key rather than configured beside it, so an id can never be paired with
    # the wrong key. 12 hex digits of a hash say nothing usable about a 256-bit key.
    return hashlib.sha256(b"approvals.audit key id\0" + key).hexdigest()[:12]


@cache
def _keys_from(configured: tuple[str, ...]) -> AuditKeys:
    by_id = {audit_key_id(key.encode()): key.encode() for key in configured}
    signing = configured[-1].encode()
    return AuditKeys(signing_id=audit_key_id(signing), signing_key=signing, by_id=by_id)


def audit_keys() -> AuditKeys:
    """The key new records are signed with (the last configured) and every key known by id."""
    return _keys_from(tuple(settings.AUDIT_HMAC_KEYS))


def audit_record_digest(record: AuditRecord, keys: AuditKeys | None = None) -> str:
    """The record's hash: HMAC-SHA256 under the key it names, or SHA-256 for an unkeyed one."""
    content = {name: getattr(record, name) for name in HASHED_FIELDS}
    content["created_at"] = _canonical_time(record.created_at)
    if not record.key_id:
        # Hashed as records were before keying, so upgraded installs still verify.
        del content["key_id"]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
    key = (keys or audit_keys()).by_id.get(record.key_id)
    if key is None:
        raise UnknownAuditKey(record.key_id)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _object_ref(target: models.Model) -> tuple[str, str, str]:
    # The public id where there is one: that is what people search for and what URLs show.
    public_id = getattr(target, "code", None) or target.pk
    return target._meta.label_lower, str(public_id), str(target)[:200]


def _locked_head() -> AuditChainHead:
    """The chain head, locked for this transaction; created on first use."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash", "key_id").first()
    try:
        # A concurrent first append may create it too: the loser re-reads the winner's row.
        with transaction.atomic():
            AuditChainHead.objects.create(
                pk=1,
                last_sequence=last.sequence if last else 0,
                last_hash=last.hash if last else GENESIS_HASH,
                keyed=bool(last and last.key_id),
            )
    except IntegrityError:
        pass
    return AuditChainHead.objects.select_for_update().get(pk=1)


@dataclass(frozen=True)
class AuditEntry:
    """One record to append: what was done, by whom, to what, and what changed.

    `origin` is where the action came from; None means the request context bound now (the
    middleware's), which is right for everything but batched intake, where one writer thread
    appends records on behalf of many requests and passes each request's own origin.
    """

    action: str
    actor: "AuditActor | AbstractBaseUser | AnonymousUser | Agent | None" = None
    target: models.Model | None = None
    object_type: str = ""
    object_id: str = ""
    object_label: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    origin: RequestContext | None = None


def audit_record(
    *,
    action: str,
    actor: AuditActor | AbstractBaseUser | AnonymousUser | Agent | None = None,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_label: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record to the audit chain, in the caller's transaction.

    `actor`: the user or agent who acted, or None for the system. `target`: the model instance
    acted on (or give object_type/object_id/object_label). `before`/`after`: what changed.
    """
    entry = AuditEntry(
        action=action,
        actor=actor,
        target=target,
        object_type=object_type,
        object_id=object_id,
        object_label=object_label,
        before=before,
        after=after,
        context=context,
    )
    return audit_records_append([entry])[0]


def audit_records_append(entries: list[AuditEntry]) -> list[AuditRecord]:
    """Append records to the audit chain in order, in the caller's transaction.

    One lock of the chain head, one multi-row insert and one head update for the lot: batched
    intake appends a few records per request for dozens of requests at once, and the head row
    is the one lock every audited write in the system queues on, so it must be held briefly
    and taken once.
    """
    if not entries:
        return []
    context_now = current_request_context()
    # Everything but the place in the chain is worked out before the head is locked: every
    # audited write in the system waits while it is held.
    records = []
    for entry in entries:
        who = AuditActor.of(entry.actor)
        object_type, object_id, object_label = (
            _object_ref(entry.target)
            if entry.target is not None
            else (entry.object_type, str(entry.object_id), entry.object_label)
        )
        origin = entry.origin or context_now
        records.append(
            AuditRecord(
                action=str(entry.action),
                actor_type=who.type,
                actor_id=who.id,
                actor_label=who.label,
                object_type=object_type,
                object_id=object_id,
                object_label=object_label[:200],
                ip_address=origin.ip_address,
                user_agent=origin.user_agent,
                request_id=origin.request_id,
                before=_jsonable(entry.before),
                after=_jsonable(entry.after),
                context=_jsonable(entry.context) or {},
            )
        )
    # The records are returned with their ids; taken here, not under the head lock.
    ids_assign(records)
    keys = audit_keys()
    # No savepoint: if appending fails, the change it describes must not commit either.
    with transaction.atomic(savepoint=False):
        # Appends are serialized on the head row (PostgreSQL row lock; SQLite has one writer
        # anyway), so no two records ever claim the same predecessor.
        head = _locked_head()
        sequence, prev_hash = head.last_sequence, head.last_hash
        chained = records
        if not head.keyed and sequence > 0:
            # Once per upgraded install: say where the unkeyed records end.
            chained = [_keying_transition(unkeyed_records=sequence), *records]
        # Read under the lock: times along the chain never go backwards.
        created_at = timezone.now()
        for record in chained:
            sequence += 1
            record.sequence, record.created_at, record.prev_hash = sequence, created_at, prev_hash
            record.key_id = keys.signing_id
            record.hash = prev_hash = audit_record_digest(record, keys)
        rows_insert(chained)
        AuditChainHead.objects.filter(pk=head.pk).update(
            last_sequence=sequence, last_hash=prev_hash, keyed=True
        )
    # Logged after commit: a rolled-back change must not leave a log line claiming a record.
    if logger.isEnabledFor(logging.INFO):
        transaction.on_commit(partial(_log_appended, records))
    return records


def _keying_transition(*, unkeyed_records: int) -> AuditRecord:
    actor = AuditActor.system()
    record = AuditRecord(
        action=str(AuditAction.AUDIT_KEYED),
        actor_type=actor.type,
        actor_label=actor.label,
        object_type="approvals.auditrecord",
        context={"unkeyed_records": unkeyed_records},
    )
    ids_assign([record])  # under the lock, but once in an install's life
    return record


def _log_appended(records: list[AuditRecord]) -> None:
    for record in records:
        logger.info(
            "audit %s %s:%s by %s",
            record.action,
            record.object_type,
            record.object_id,
            record.actor_type,
            extra={
                # From the record: the commit may happen after the request context is gone.
                "request_id": record.request_id,
                "audit_action": record.action,
                "audit_sequence": record.sequence,
                "object_type": record.object_type,
                "object_id": record.object_id,
                "actor_type": record.actor_type,
                "actor_id": record.actor_id,
            },
        )


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
