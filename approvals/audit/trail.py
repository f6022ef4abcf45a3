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
records and any head change but forward (migrations 0004 and 0017), except the deletes of
`manage.py audit_archive`'s prune, behind a checkpoint (0026, prune.py); anchors printed by
`manage.py audit_anchor` and kept elsewhere catch a trail cut short. docs/audit.md has the rest.
The keys and digests are in keys.py, verifying and anchors in verification.py.

Records from before keying (upgraded installs) were plain SHA-256 and have no key id. They are
accepted only as the chain's prefix: the first keyed record after them is an `audit.keyed`
record saying how many there were, and an unkeyed record after it breaks the chain.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from agents.models import Agent
from approvals.audit.keys import GENESIS_HASH, audit_keys, audit_record_digest, jsonable
from approvals.audit.models import AuditActorType, AuditChainHead, AuditRecord
from console.hot_statements import Statement, statements_rows
from console.new_instances import instance_new
from console.request_context import RequestContext, current_request_context
from console.row_inserts import ids_assign, rows_insert

logger = logging.getLogger("approvals.audit")


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
    RUN_EXPORTED = "run.exported", "Run record exported"
    # The first keyed record of an upgraded install: the records before it were unkeyed.
    AUDIT_KEYED = "audit.keyed", "Audit trail keyed"
    # The oldest records were archived to a file and deleted (approvals.audit.prune): signed,
    # it vouches for the prune checkpoint the live chain now starts from.
    AUDIT_PRUNED = "audit.pruned", "Audit trail archived and pruned"


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
            return _CONSOLE
        if isinstance(who, AuditActor):
            return who
        if isinstance(who, Agent):
            return cls(type=AuditActorType.AGENT, id=str(who.code), label=who.name[:200])
        if not getattr(who, "is_authenticated", False):
            return cls.anonymous()
        return cls(type=AuditActorType.REVIEWER, id=str(who.pk), label=who.get_username()[:200])


# The console itself: the actor of most records a policy-decided request writes.
_CONSOLE = AuditActor.system()


def _object_ref(target: models.Model) -> tuple[str, str, str]:
    # The public id where there is one: that is what people search for and what URLs show.
    public_id = getattr(target, "code", None) or target.pk
    return target._meta.label_lower, str(public_id), str(target)[:200]


def _locked_head(
    *,
    ids_wanted: int,
    along_with: Sequence[Sequence[models.Model]],
    along_with_statements: Sequence[Statement],
) -> tuple[AuditChainHead, list[int]]:
    """The chain head, locked for this transaction (created on first use), and `ids_wanted`
    ids for new records, in one round trip with the insert of the caller's rows `along_with`
    and the caller's statements."""
    selected = rows_insert(
        *along_with, also=along_with_statements, then=_head_lock_query(ids_wanted)
    )
    if selected:
        return _head_and_ids(selected[0])
    if connection.vendor == "postgresql":
        # The first append of a database creates the head. Two first appends at once must not
        # both read "no records yet": the head's guard refuses the one whose reading the other
        # made stale (the guard checks before the unique key would turn it into a lost race).
        # So its creation is serialized, until commit; the second finds the first's head.
        statements_rows([("SELECT pg_advisory_xact_lock(%s)", [_HEAD_CREATION_LOCK])])
        (selected,) = statements_rows([_head_lock_query(ids_wanted)])
        if selected:
            return _head_and_ids(selected[0])
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
    (row,) = rows_insert(then=_head_lock_query(ids_wanted))
    return _head_and_ids(row)


# A constant of our own for pg_advisory_xact_lock: "audit" in ASCII, the head's creation.
_HEAD_CREATION_LOCK = 0x6175646974


def _head_and_ids(row: tuple[Any, ...]) -> tuple[AuditChainHead, list[int]]:
    pk, last_sequence, last_hash, keyed, ids = row
    head = AuditChainHead(pk=pk, last_sequence=last_sequence, last_hash=last_hash, keyed=keyed)
    head._state.adding = False  # as read from the database
    return head, list(ids or [])


def _head_lock_query(ids_wanted: int) -> tuple[str, list[Any]]:
    """Lock the head row; on PostgreSQL, take the new records' ids from their sequence in the
    same statement (elsewhere the insert numbers them)."""
    head = connection.ops.quote_name(AuditChainHead._meta.db_table)
    columns = "id, last_sequence, last_hash, keyed"
    if connection.vendor != "postgresql":
        return f"SELECT {columns}, NULL FROM {head} WHERE id = 1", []  # noqa: S608 (our table)
    # The LIMIT changes no result: it lets PostgreSQL plan the prepared statement once, not at
    # every execution (see console.row_inserts._NEXT_IDS).
    return (
        f"SELECT {columns}, ARRAY(SELECT nextval(pg_get_serial_sequence(%s, 'id')) "  # noqa: S608 (our table)
        f"FROM generate_series(1, %s::int) LIMIT %s::int) FROM {head} WHERE id = 1 FOR UPDATE",
        [AuditRecord._meta.db_table, ids_wanted, ids_wanted],
    )


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


def audit_records_append(
    entries: list[AuditEntry],
    *,
    along_with: Sequence[Sequence[models.Model]] = (),
    along_with_statements: Sequence[Statement] = (),
) -> list[AuditRecord]:
    """Append records to the audit chain in order, in the caller's transaction.

    One lock of the chain head, one multi-row insert and one head update for the lot: batched
    intake appends a few records per request for dozens of requests at once, and the head row
    is the one lock every audited write in the system queues on, so it must be held briefly
    and taken once.

    `along_with`: the new rows of the change the records describe, if the caller has not
    written them yet (groups of one model, as console.row_inserts.rows_insert takes them, ids
    assigned where other rows refer to them). They go in the round trip that locks the head:
    one round trip fewer before the commit, and the head is held no longer than before.
    `along_with_statements`: the caller's statements that go with them, after the rows (a
    decision's status update).
    """
    if not entries:
        return []
    context_now = current_request_context()
    # Everything but the place in the chain is worked out before the head is locked: every
    # audited write in the system waits while it is held.
    records = _unchained_records(entries, context_now)
    keys = audit_keys()
    # No savepoint: if appending fails, the change it describes must not commit either.
    with transaction.atomic(savepoint=False):
        # Appends are serialized on the head row (PostgreSQL row lock; SQLite has one writer
        # anyway), so no two records ever claim the same predecessor.
        head, ids = _locked_head(
            ids_wanted=len(records),
            along_with=along_with,
            along_with_statements=along_with_statements,
        )
        for record, pk in zip(records, ids, strict=False):
            record.pk = pk  # returned with their ids (on SQLite, the insert sets them)
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
        # The head moves in a statement after the insert's (its guard, a trigger, checks that it
        # moves to the newest record, which the insert's own statement would not show it); with
        # few records both go in one round trip. Nothing reads what they return, so they go with
        # the transaction's next one: for a creation or a decision, its COMMIT's. The head stays
        # locked until then either way.
        rows_insert(chained, then=(_HEAD_MOVES, [sequence, prev_hash, head.pk]), deferred=True)
    # Logged after commit: a rolled-back change must not leave a log line claiming a record.
    if logger.isEnabledFor(logging.INFO):
        transaction.on_commit(partial(_log_appended, records))
    return records


# Our own table's name, quoted as both backends quote it.
_HEAD_MOVES = (
    f'UPDATE "{AuditChainHead._meta.db_table}" '  # noqa: S608 (a model's table, not input)
    "SET last_sequence = %s, last_hash = %s, keyed = true WHERE id = %s"
)


def _unchained_records(entries: list[AuditEntry], context_now: RequestContext) -> list[AuditRecord]:
    # A request's records share its reference (its label is a formatted string): made once.
    refs: dict[int, tuple[str, str, str]] = {}
    return [_unchained_record(entry, entry.origin or context_now, refs) for entry in entries]


def _unchained_record(
    entry: AuditEntry, origin: RequestContext, refs: dict[int, tuple[str, str, str]]
) -> AuditRecord:
    """The entry as a record, with everything but its place in the chain (sequence, hash).
    `refs`: the targets' references made so far in this append, by the target's identity."""
    who = AuditActor.of(entry.actor)
    if entry.target is not None:
        ref = refs.get(id(entry.target))
        if ref is None:
            ref = refs[id(entry.target)] = _object_ref(entry.target)
        object_type, object_id, object_label = ref
    else:
        object_type, object_id, object_label = (
            entry.object_type,
            str(entry.object_id),
            entry.object_label,
        )
    return instance_new(
        AuditRecord,
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
        before=jsonable(entry.before),
        after=jsonable(entry.after),
        context=jsonable(entry.context) or {},
    )


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
