"""The audit trail's tables: declared here, in the bottom layer, so the trail imports nothing
of the console above it. approvals.models imports them, so Django registers them with the
approvals app (and their tables keep their names)."""

from django.db import models


class AuditActorType(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"
    # Someone who did not authenticate, e.g. a failed login.
    ANONYMOUS = "anonymous", "Anonymous"


class AuditRecord(models.Model):
    """One effectful action, append-only and hash-chained (see approvals.audit).

    Actors and objects are stored as immutable ids and labels, not foreign keys: an audit row
    must outlive what it describes, and an ON DELETE action would have to update it.
    """

    # Position in the chain, 1-based, without gaps: a deleted or inserted row shows as a gap.
    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    # Indexed in Meta, like hash: a CharField's db_index or unique also gets a
    # varchar_pattern_ops twin on PostgreSQL, which serves only LIKE 'prefix%' (no query here),
    # and costs one more insertion on every audited write.
    action = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=10, choices=AuditActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    # Which HMAC key signed `hash` (approvals.audit); empty on records from before keying began.
    key_id = models.CharField(max_length=16, blank=True, default="")
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        constraints = [models.UniqueConstraint(fields=["hash"], name="audit_unique_hash")]
        indexes = [
            models.Index(fields=["action"], name="audit_action"),
            # Led by the id: a run export and the archiving of decided requests look records up
            # by object ids alone, which an index led by the type cannot serve.
            models.Index(fields=["object_id", "object_type"], name="audit_object_id"),
            # Only indexes a query reads through: each costs an insertion on every audited write
            # (migration 0030 says why request_id and the actor have none).
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"


class AuditChainHead(models.Model):
    """The single row that serializes appends and remembers the chain's end.

    Appenders lock it (SELECT ... FOR UPDATE) so two transactions never extend the chain from the
    same record; it also lets audit_verify notice records cut off the end of the chain.
    """

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    # Whether the chain has reached its keyed part: the next append knows, without a query,
    # whether it must first mark the end of an upgraded install's unkeyed records.
    keyed = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"audit chain at #{self.last_sequence}"


class AuditPruneCheckpoint(models.Model):
    """Where the live chain starts after `manage.py audit_archive` archived and deleted its
    oldest records: the last deleted record's place and hash, which the first remaining record
    links to, and the archive that holds them.

    One row per prune, append-only like the records (the database refuses UPDATE and DELETE);
    the newest is where audit_verify starts. An `audit.pruned` record, signed and chained after
    the cut in the prune's own transaction, repeats its content: without the key, nobody can
    add a checkpoint that verifies, so cutting the chain's start shows as one that nothing vouches
    for.
    """

    # The last record archived and deleted (the cut).
    sequence = models.PositiveBigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    # Whether the chain had reached its keyed part by the cut: records after it may be unkeyed
    # only if not (approvals.audit.trail, upgraded installs).
    keyed = models.BooleanField()
    # The archive's first record: the one after the previous checkpoint, or #1.
    first_sequence = models.PositiveBigIntegerField()
    records = models.PositiveBigIntegerField()
    # The archive's file name when written, and the SHA-256 its last line closes with (over every
    # line before it: the same whether the file is moved or recompressed).
    archive_name = models.CharField(max_length=400)
    archive_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"audit pruned through #{self.sequence}"
