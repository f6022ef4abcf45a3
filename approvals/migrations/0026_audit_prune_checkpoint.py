"""Audit records may be deleted by one path only: `manage.py audit_archive`'s prune.

The prune archives the oldest records to a file, verifies it, then in one transaction records a
checkpoint (approvals.audit.models.AuditPruneCheckpoint) and deletes exactly the records up to it.
The guards of 0004 and 0017 still refuse every other DELETE; one is allowed only when all hold:

- the transaction set `approvals.audit_prune_through` to the cut's sequence (PostgreSQL:
  `set_config(..., true)`, transaction-local; SQLite: the connection's
  approvals_audit_prune_through(), set by approvals.audit.guards.audit_prune_allowed);
- a checkpoint at exactly that sequence exists (so a prune always leaves one behind);
- the record is at or before the cut, and before the chain head's record (never the newest).

Checkpoints are append-only too (no UPDATE or DELETE; no TRUNCATE on PostgreSQL), except for a
test database's flush, as for the records (approvals.audit.guards).

Anyone with the app role can still set the setting and insert a checkpoint; what they cannot do
without the key is sign the `audit.pruned` record that vouches for it, and audit_verify fails on
a checkpoint nothing vouches for (docs/audit.md).
"""

from django.db import migrations, models

PG_REFUSE_CHANGE_OLD = """
CREATE OR REPLACE FUNCTION approvals_auditrecord_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

PG_CREATE = """
CREATE OR REPLACE FUNCTION approvals_auditrecord_refuse_change() RETURNS trigger AS $$
DECLARE
    prune_through bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- Unset is NULL; once set and reset at the end of a transaction it is ''.
        prune_through := NULLIF(current_setting('approvals.audit_prune_through', true), '')::bigint;
        IF prune_through IS NOT NULL
           AND OLD.sequence <= prune_through
           AND EXISTS (SELECT 1 FROM approvals_auditprunecheckpoint WHERE sequence = prune_through)
           AND OLD.sequence < COALESCE(
               (SELECT last_sequence FROM approvals_auditchainhead WHERE id = 1), 0) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION approvals_auditprunecheckpoint_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit prune checkpoints are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_auditprunecheckpoint_append_only
    BEFORE UPDATE OR DELETE ON approvals_auditprunecheckpoint
    FOR EACH ROW EXECUTE FUNCTION approvals_auditprunecheckpoint_refuse_change();
CREATE TRIGGER approvals_auditprunecheckpoint_no_truncate
    BEFORE TRUNCATE ON approvals_auditprunecheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION approvals_audit_refuse_truncate();
"""

PG_DROP = (
    """
DROP TRIGGER IF EXISTS approvals_auditprunecheckpoint_no_truncate
    ON approvals_auditprunecheckpoint;
DROP TRIGGER IF EXISTS approvals_auditprunecheckpoint_append_only
    ON approvals_auditprunecheckpoint;
DROP FUNCTION IF EXISTS approvals_auditprunecheckpoint_refuse_change();
"""
    + PG_REFUSE_CHANGE_OLD
)

SQLITE_RECORD_NO_DELETE_OLD = """CREATE TRIGGER approvals_auditrecord_no_delete
    BEFORE DELETE ON approvals_auditrecord
    WHEN NOT approvals_audit_wipe_allowed()
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused'); END"""

# approvals_audit_prune_through() is 0 unless the prune set it (approvals.audit.guards); a
# connection without it (the sqlite3 shell) gets "no such function": refused all the same.
SQLITE_CREATE = [
    "DROP TRIGGER IF EXISTS approvals_auditrecord_no_delete",
    """CREATE TRIGGER approvals_auditrecord_no_delete BEFORE DELETE ON approvals_auditrecord
    WHEN NOT approvals_audit_wipe_allowed() AND NOT (
        OLD.sequence <= approvals_audit_prune_through()
        AND EXISTS (SELECT 1 FROM approvals_auditprunecheckpoint
                    WHERE sequence = approvals_audit_prune_through())
        AND OLD.sequence < COALESCE(
            (SELECT last_sequence FROM approvals_auditchainhead WHERE id = 1), 0))
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused'); END""",
    """CREATE TRIGGER approvals_auditprunecheckpoint_no_update
    BEFORE UPDATE ON approvals_auditprunecheckpoint
    BEGIN SELECT RAISE(ABORT, 'audit prune checkpoints are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER approvals_auditprunecheckpoint_no_delete
    BEFORE DELETE ON approvals_auditprunecheckpoint
    WHEN NOT approvals_audit_wipe_allowed()
    BEGIN SELECT RAISE(ABORT, 'audit prune checkpoints are append-only: DELETE refused'); END""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS approvals_auditprunecheckpoint_no_delete",
    "DROP TRIGGER IF EXISTS approvals_auditprunecheckpoint_no_update",
    "DROP TRIGGER IF EXISTS approvals_auditrecord_no_delete",
    SQLITE_RECORD_NO_DELETE_OLD,
]


def _run(schema_editor, *, postgresql: str, sqlite: list[str]) -> None:
    by_vendor = {"postgresql": [postgresql], "sqlite": sqlite}
    for statement in by_vendor.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def create_guards(apps, schema_editor):
    _run(schema_editor, postgresql=PG_CREATE, sqlite=SQLITE_CREATE)


def drop_guards(apps, schema_editor):
    _run(schema_editor, postgresql=PG_DROP, sqlite=SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0025_notification_first_attempt_at")]

    operations = [
        migrations.CreateModel(
            name="AuditPruneCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveBigIntegerField(unique=True)),
                ("hash", models.CharField(max_length=64)),
                ("keyed", models.BooleanField()),
                ("first_sequence", models.PositiveBigIntegerField()),
                ("records", models.PositiveBigIntegerField()),
                ("archive_name", models.CharField(max_length=400)),
                ("archive_sha256", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
            ],
            options={"ordering": ["sequence"]},
        ),
        migrations.RunPython(create_guards, drop_guards),
    ]
