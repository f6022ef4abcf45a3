"""Two fewer index insertions on every audited write: the audit trail's indexes on `request_id`
and on (`actor_type`, `actor_id`) go, as no query reads through them.

Nothing looks records up by the HTTP request id. The actor filter of the export and the admin's
search match `actor_id` or `actor_label` (an index led by the type serves neither), and the
admin's filter by actor type picks one of four values, which PostgreSQL reads by scanning anyway.
A gated call writes two records (submitted, then decided by policy or a reviewer), so this is
four insertions fewer per call.

On PostgreSQL the indexes are dropped CONCURRENTLY (no lock held against the writes of a live
console), so the migration is not atomic; each step can be run again. Undoing it builds them
again, CONCURRENTLY too.
"""

from django.db import migrations

RECORDS = "approvals_auditrecord"
DROPPED = [
    ("audit_request_id", ["request_id"]),
    ("audit_actor", ["actor_type", "actor_id"]),
]


def _postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def indexes_dropped(apps, schema_editor):
    concurrently = "CONCURRENTLY " if _postgresql(schema_editor) else ""
    for name, _columns in DROPPED:
        schema_editor.execute(
            f"DROP INDEX {concurrently}IF EXISTS {schema_editor.quote_name(name)}"
        )


def indexes_built(apps, schema_editor):
    postgresql = _postgresql(schema_editor)
    for name, columns in DROPPED:
        quoted = schema_editor.quote_name(name)
        if postgresql:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name]
                )
                found = cursor.fetchone()
            if found is not None and not found[0]:  # left invalid by a failed concurrent build
                schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted}")
        concurrently = "CONCURRENTLY " if postgresql else ""
        listed = ", ".join(schema_editor.quote_name(column) for column in columns)
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {quoted} "
            f"ON {schema_editor.quote_name(RECORDS)} ({listed})"
        )


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("approvals", "0029_reviewer_page_settings_plural"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(indexes_dropped, indexes_built)],
            state_operations=[
                migrations.RemoveIndex(model_name="auditrecord", name=name)
                for name, _columns in DROPPED
            ],
        ),
    ]
