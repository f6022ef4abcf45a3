"""The audit chain head's guard (0017) reads the rows it checks whole, so that a later change of
the head's columns does not break audited writes on connections opened before it.

PL/pgSQL plans each expression of a function once per session and keeps the plan. A plan that
reads a field of NEW or OLD (`NEW.last_hash = newest_hash`) has that field's type built in, and
one that names no table is never planned again when a table changes: after a migration changed
the type of a head column (varchar to text, bigint to numeric), every connection that had already
run the guard refused every later audited write ("type of parameter ... does not match that when
preparing the plan", SQLSTATE 42804), for as long as the connection lived. In a rolling deploy
that is every pooled connection of the old and the new servers, and every decision fails.

So the guard takes NEW and OLD whole (`to_jsonb`: the row's type is the table's, which keeps its
identity through any column change, and the conversion reads the columns as they are now) and
casts each field to a type of its own. Nothing in it depends on the head's column types any more:
a migration that changes them need not replace it, and a console does not have to retry that
error (console/hot_statements.py retries only what a retry fixes; this one would fail again on
the same connection). Checked by tests/approvals/test_audit_guards.py, which also refuses a
guard that reads a field of NEW or OLD again.

Same rules as 0017, same messages and SQLSTATE. The records' guard (0026) still reads
`OLD.sequence`: it runs only for a prune's deletes (`manage.py audit_archive`, a process and
connection of its own), never on an audited write. SQLite's triggers are not plans kept per
connection: nothing changes there.
"""

from django.db import migrations

GENESIS = "0" * 64

# (Constants only are formatted into this SQL.)
PG_GUARD_READS_ROWS_WHOLE = f"""
CREATE OR REPLACE FUNCTION approvals_auditchainhead_guard() RETURNS trigger AS $$
DECLARE
    new_row jsonb;
    old_row jsonb;
    new_id numeric;
    new_sequence numeric;
    new_hash text;
    new_keyed boolean;
    names_the_newest boolean;
    newest_sequence numeric;
    newest_hash text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit chain head cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Whole, never a field of it: see this migration's docstring.
    new_row := to_jsonb(NEW);
    new_id := (new_row ->> 'id')::numeric;
    new_sequence := (new_row ->> 'last_sequence')::numeric;
    new_hash := new_row ->> 'last_hash';
    new_keyed := (new_row ->> 'keyed')::boolean;
    IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM approvals_auditchainhead WHERE id = new_id) THEN
        -- A concurrent first append created it: let the primary key refuse this one, with the
        -- IntegrityError the appender expects (approvals.audit._locked_head).
        RETURN NEW;
    END IF;
    SELECT sequence, hash INTO newest_sequence, newest_hash
        FROM approvals_auditrecord ORDER BY sequence DESC LIMIT 1;
    IF newest_sequence IS NULL THEN
        names_the_newest := new_sequence = 0 AND new_hash = '{GENESIS}';
    ELSE
        names_the_newest := new_sequence = newest_sequence AND new_hash = newest_hash;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
    END IF;
    IF new_id <> 1 OR NOT names_the_newest
       OR (TG_OP = 'UPDATE' AND (new_id <> (old_row ->> 'id')::numeric
                                 OR new_sequence < (old_row ->> 'last_sequence')::numeric
                                 OR ((old_row ->> 'keyed')::boolean AND NOT new_keyed))) THEN
        RAISE EXCEPTION 'the audit chain head only moves forward, to the newest record: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""  # noqa: S608


def guard_replaced(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_GUARD_READS_ROWS_WHOLE, params=None)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0026_audit_prune_checkpoint")]

    operations = [
        # Not put back when reversed: the same rules on 0017's schema, and 0017's text would
        # only bring the defect back (0017's own reversal drops the function either way).
        migrations.RunPython(guard_replaced, migrations.RunPython.noop),
    ]
