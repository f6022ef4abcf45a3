"""On PostgreSQL, the database itself refuses UPDATE and DELETE on audit records.

A trigger, not a permission: it binds every role that connects, including the application's
own. SQLite has no equivalent; there the hash chain (manage.py audit_verify) is the evidence.
TRUNCATE, and the chain head, are guarded by 0017 (test databases are flushed with TRUNCATE).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION approvals_auditrecord_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_auditrecord_append_only
    BEFORE UPDATE OR DELETE ON approvals_auditrecord
    FOR EACH ROW EXECUTE FUNCTION approvals_auditrecord_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS approvals_auditrecord_append_only ON approvals_auditrecord;
DROP FUNCTION IF EXISTS approvals_auditrecord_refuse_change();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0003_audit_trail")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
