"""The audit trail keyed with an HMAC, and guarded against being wiped.

Records carry the id of the key that signed them (approvals.audit); the chain head knows whether
the chain has reached its keyed part. The database refuses what would wipe or rewind the trail:

- PostgreSQL: TRUNCATE of the records or the head (statement triggers: TRUNCATE fires no DELETE
  trigger), DELETE of the head, and any head change that is not "forward, to the newest record".
  UPDATE and DELETE of records were already refused (0004). Triggers bind every role, the owner
  included; only the owner or a superuser can disable them, which is what the HMAC is for.
- SQLite: the same as far as it goes: UPDATE and DELETE of records, DELETE of the head, the head
  moving other than forward. Anyone who can write the file can drop a trigger; there the HMAC
  and anchors are the evidence.

Test databases are flushed between tests (TRUNCATE on PostgreSQL, DELETE on SQLite): only a
connection configured for it may (approvals.audit_guards), and on PostgreSQL only a superuser's,
who could drop the triggers anyway.

On SQLite, a later migration that rebuilds either table (most AlterField) drops its triggers with
the old table: tests/approvals/test_audit_guards.py checks they are all still there.
"""

from django.db import migrations, models

GENESIS = "0" * 64

# The head may only name the newest record (or, with no records, the genesis): checked on every
# append with one backward step along the sequence index. Not `NOT EXISTS (... sequence > NEW.x)`:
# after five calls PL/pgSQL plans generically, and a range over a parameter is then estimated at a
# third of the table and scanned (tens of milliseconds under the chain lock at 200k records).
# (Constants only are formatted into this SQL.)
PG_CREATE = f"""
CREATE OR REPLACE FUNCTION approvals_audit_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('approvals.audit_wipe', true) = 'allowed'
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail cannot be truncated: TRUNCATE % refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_auditrecord_no_truncate
    BEFORE TRUNCATE ON approvals_auditrecord
    FOR EACH STATEMENT EXECUTE FUNCTION approvals_audit_refuse_truncate();
CREATE TRIGGER approvals_auditchainhead_no_truncate
    BEFORE TRUNCATE ON approvals_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION approvals_audit_refuse_truncate();

CREATE OR REPLACE FUNCTION approvals_auditchainhead_guard() RETURNS trigger AS $$
DECLARE
    names_the_newest boolean;
    newest_sequence bigint;
    newest_hash varchar(64);
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit chain head cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM approvals_auditchainhead WHERE id = NEW.id) THEN
        -- A concurrent first append created it: let the primary key refuse this one, with the
        -- IntegrityError the appender expects (approvals.audit._locked_head).
        RETURN NEW;
    END IF;
    SELECT sequence, hash INTO newest_sequence, newest_hash
        FROM approvals_auditrecord ORDER BY sequence DESC LIMIT 1;
    IF newest_sequence IS NULL THEN
        names_the_newest := NEW.last_sequence = 0 AND NEW.last_hash = '{GENESIS}';
    ELSE
        names_the_newest := NEW.last_sequence = newest_sequence AND NEW.last_hash = newest_hash;
    END IF;
    IF NEW.id <> 1 OR NOT names_the_newest
       OR (TG_OP = 'UPDATE' AND (NEW.id <> OLD.id
                                 OR NEW.last_sequence < OLD.last_sequence
                                 OR (OLD.keyed AND NOT NEW.keyed))) THEN
        RAISE EXCEPTION 'the audit chain head only moves forward, to the newest record: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_auditchainhead_forward_only
    BEFORE INSERT OR UPDATE OR DELETE ON approvals_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION approvals_auditchainhead_guard();
"""  # noqa: S608

PG_DROP = """
DROP TRIGGER IF EXISTS approvals_auditchainhead_forward_only ON approvals_auditchainhead;
DROP FUNCTION IF EXISTS approvals_auditchainhead_guard();
DROP TRIGGER IF EXISTS approvals_auditchainhead_no_truncate ON approvals_auditchainhead;
DROP TRIGGER IF EXISTS approvals_auditrecord_no_truncate ON approvals_auditrecord;
DROP FUNCTION IF EXISTS approvals_audit_refuse_truncate();
"""

_SQLITE_HEAD_IS_NEWEST = f"""CASE WHEN EXISTS (SELECT 1 FROM approvals_auditrecord)
    THEN (NEW.last_sequence, NEW.last_hash)
         = (SELECT sequence, hash FROM approvals_auditrecord ORDER BY sequence DESC LIMIT 1)
    ELSE NEW.last_sequence = 0 AND NEW.last_hash = '{GENESIS}'
    END"""  # noqa: S608

# One statement each: SQLite's executescript is not transactional, execute() takes one.
# approvals_audit_wipe_allowed() is registered on every connection (approvals.audit_guards); a
# connection without it (the sqlite3 shell) gets "no such function": refused all the same.
SQLITE_CREATE = [
    """CREATE TRIGGER approvals_auditrecord_no_update BEFORE UPDATE ON approvals_auditrecord
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER approvals_auditrecord_no_delete BEFORE DELETE ON approvals_auditrecord
    WHEN NOT approvals_audit_wipe_allowed()
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused'); END""",
    """CREATE TRIGGER approvals_auditchainhead_no_delete BEFORE DELETE ON approvals_auditchainhead
    WHEN NOT approvals_audit_wipe_allowed()
    BEGIN SELECT RAISE(ABORT, 'the audit chain head cannot be deleted'); END""",
    f"""CREATE TRIGGER approvals_auditchainhead_forward_only
    BEFORE UPDATE ON approvals_auditchainhead
    WHEN NEW.id <> OLD.id OR NEW.last_sequence < OLD.last_sequence
        OR (OLD.keyed AND NOT NEW.keyed) OR NOT ({_SQLITE_HEAD_IS_NEWEST})
    BEGIN SELECT RAISE(ABORT,
        'the audit chain head only moves forward, to the newest record: UPDATE refused'); END""",
    f"""CREATE TRIGGER approvals_auditchainhead_starts_at_the_end
    BEFORE INSERT ON approvals_auditchainhead
    WHEN NEW.id <> 1 OR NOT ({_SQLITE_HEAD_IS_NEWEST})
    BEGIN SELECT RAISE(ABORT,
        'the audit chain head only moves forward, to the newest record: INSERT refused'); END""",
]

SQLITE_TRIGGERS = (
    "approvals_auditrecord_no_update",
    "approvals_auditrecord_no_delete",
    "approvals_auditchainhead_no_delete",
    "approvals_auditchainhead_forward_only",
    "approvals_auditchainhead_starts_at_the_end",
)


def create_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement, params=None)


def drop_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0016_approval_timeout_any_length")]

    operations = [
        migrations.AddField(
            model_name="auditchainhead",
            name="keyed",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="auditrecord",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(create_guards, drop_guards),
    ]
