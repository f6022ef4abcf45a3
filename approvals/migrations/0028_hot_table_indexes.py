"""Fewer index insertions on every gated call: the indexes no query needs leave the tables each
call writes, and the audit trail's object index is led by the object's id.

Dropped, as redundant: the requests' own index on `status` (approval_status_deadline starts with
it) and on `agent_id` (approval_unique_idempotency_key starts with it), the notifications' on
`recipient_id` (notification_inbox starts with it), and the varchar_pattern_ops twins Django adds
on PostgreSQL to a CharField with db_index or unique (`..._like`), which serve LIKE 'prefix%'
alone: no query here uses one. The fields that keep an index get it from Meta instead, under the
name the state now gives it, so the twin never comes back.

On a large table this must not rebuild what exists. On PostgreSQL the kept indexes are renamed
(ALTER INDEX ... RENAME, which blocks no write and also renames a unique constraint's name), the
others dropped CONCURRENTLY, and the one new index, audit_object_id, is built CONCURRENTLY before
audit_object goes: so the migration is not atomic, and each step can be run again (a step that
finds its work done does nothing; an index a failed concurrent build left invalid is built
again). The previous release never names an index, so it keeps working during a rolling upgrade.
SQLite cannot rename an index: the two renamed plain indexes are dropped and created again under
their new names (an embedded database is small), and its unique constraints keep SQLite's own
name (SQLite rebuilds a table to drop one, whatever its name).

Existing names are found in the database, not assumed: a database upgraded along another path
may have named them differently.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

RECORDS = "approvals_auditrecord"
REQUESTS = "approvals_approvalrequest"
NOTIFICATIONS = "approvals_notification"

# (table, column, unique, new name): the field's index or unique constraint, kept and renamed.
RENAMED = [
    (RECORDS, "action", False, "audit_action"),
    (RECORDS, "request_id", False, "audit_request_id"),
    (RECORDS, "hash", True, "audit_unique_hash"),
    (NOTIFICATIONS, "dedupe_key", True, "notification_unique_dedupe_key"),
]
# (table, column, whether it had a LIKE twin): the field's own index, dropped (twin too).
DROPPED = [
    (REQUESTS, "status", True),
    (REQUESTS, "agent_id", False),
    (NOTIFICATIONS, "recipient_id", False),
]
OBJECT_INDEX_WAS = ("audit_object", ["object_type", "object_id"])
OBJECT_INDEX = ("audit_object_id", ["object_id", "object_type"])
LIKE = "_like"  # Django's suffix for the varchar_pattern_ops twin


def _single_column_indexes(schema_editor, table, column):
    """{name: (unique, primary key)} of the indexes and unique constraints on `column` alone."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        name: (bool(info["unique"]), bool(info["primary_key"]))
        for name, info in constraints.items()
        if info["columns"] == [column] and (info["index"] or info["unique"])
    }


def _index_exists(schema_editor, name):
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "postgresql":
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = %s", [name]
            )
        return bool(cursor.fetchone()[0])


def _drop_index(schema_editor, name):
    quoted = schema_editor.quote_name(name)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted}")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quoted}")


def _create_index(schema_editor, table, name, columns, *, like=False):
    quoted = ", ".join(
        schema_editor.quote_name(column) + (" varchar_pattern_ops" if like else "")
        for column in columns
    )
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name]
            )
            found = cursor.fetchone()
        if found is not None and not found[0]:
            _drop_index(schema_editor, name)  # left invalid by a concurrent build that failed
    concurrently = "CONCURRENTLY " if postgresql else ""
    schema_editor.execute(
        f"CREATE INDEX {concurrently}IF NOT EXISTS {schema_editor.quote_name(name)} "
        f"ON {schema_editor.quote_name(table)} ({quoted})"
    )


def _rename_index(schema_editor, table, old, new, columns):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER INDEX {schema_editor.quote_name(old)} RENAME TO {schema_editor.quote_name(new)}"
        )
    else:
        _create_index(schema_editor, table, new, columns)
        _drop_index(schema_editor, old)


def indexes_trimmed(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    name, columns = OBJECT_INDEX
    _create_index(schema_editor, RECORDS, name, columns)
    _drop_index(schema_editor, OBJECT_INDEX_WAS[0])
    for table, column, unique, new_name in RENAMED:
        found = _single_column_indexes(schema_editor, table, column)
        for old in [name for name in found if name.endswith(LIKE)]:
            _drop_index(schema_editor, old)
        kept = [
            name
            for name, (is_unique, primary) in found.items()
            if not name.endswith(LIKE) and is_unique == unique and not primary
        ]
        if new_name in kept or not kept or (unique and not postgresql):
            continue  # renamed already, or SQLite's inline UNIQUE (see the docstring)
        _rename_index(schema_editor, table, kept[0], new_name, [column])
    for table, column, _had_like in DROPPED:
        for old, (is_unique, primary) in _single_column_indexes(
            schema_editor, table, column
        ).items():
            if not is_unique and not primary:
                _drop_index(schema_editor, old)


def indexes_restored(apps, schema_editor):
    """Back to the indexes Django gave these fields, under Django's names for them."""
    postgresql = schema_editor.connection.vendor == "postgresql"

    def django_name(table, column, suffix=""):
        return schema_editor._create_index_name(table, [column], suffix=suffix)

    for table, column, had_like in DROPPED:
        _create_index(schema_editor, table, django_name(table, column), [column])
        if postgresql and had_like:
            _create_index(
                schema_editor, table, django_name(table, column, LIKE), [column], like=True
            )
    for table, column, unique, new_name in RENAMED:
        if postgresql:
            _create_index(
                schema_editor, table, django_name(table, column, LIKE), [column], like=True
            )
        if unique:
            if postgresql and _index_exists(schema_editor, new_name):
                schema_editor.execute(
                    f"ALTER INDEX {schema_editor.quote_name(new_name)} "
                    f"RENAME TO {schema_editor.quote_name(f'{table}_{column}_key')}"
                )
        elif _index_exists(schema_editor, new_name):
            _rename_index(schema_editor, table, new_name, django_name(table, column), [column])
    name, columns = OBJECT_INDEX_WAS
    _create_index(schema_editor, RECORDS, name, columns)
    _drop_index(schema_editor, OBJECT_INDEX[0])


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("agents", "0009_webhook_notification_lease_until"),
        ("approvals", "0027_audit_head_guard_reads_rows_whole"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(indexes_trimmed, indexes_restored)],
            state_operations=[
                migrations.RemoveIndex(model_name="auditrecord", name="audit_object"),
                migrations.AlterField(
                    model_name="approvalrequest",
                    name="agent",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="approval_requests",
                        to="agents.agent",
                    ),
                ),
                migrations.AlterField(
                    model_name="approvalrequest",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("approved", "Approved"),
                            ("denied", "Denied"),
                            ("expired", "Expired"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                migrations.AlterField(
                    model_name="auditrecord", name="action", field=models.CharField(max_length=64)
                ),
                migrations.AlterField(
                    model_name="auditrecord", name="hash", field=models.CharField(max_length=64)
                ),
                migrations.AlterField(
                    model_name="auditrecord",
                    name="request_id",
                    field=models.CharField(blank=True, max_length=128),
                ),
                migrations.AlterField(
                    model_name="notification",
                    name="dedupe_key",
                    field=models.CharField(max_length=255),
                ),
                migrations.AlterField(
                    model_name="notification",
                    name="recipient",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notifications",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddIndex(
                    model_name="auditrecord",
                    index=models.Index(fields=["action"], name="audit_action"),
                ),
                migrations.AddIndex(
                    model_name="auditrecord",
                    index=models.Index(fields=["request_id"], name="audit_request_id"),
                ),
                migrations.AddIndex(
                    model_name="auditrecord",
                    index=models.Index(fields=["object_id", "object_type"], name="audit_object_id"),
                ),
                migrations.AddConstraint(
                    model_name="auditrecord",
                    constraint=models.UniqueConstraint(fields=("hash",), name="audit_unique_hash"),
                ),
                migrations.AddConstraint(
                    model_name="notification",
                    constraint=models.UniqueConstraint(
                        fields=("dedupe_key",), name="notification_unique_dedupe_key"
                    ),
                ),
            ],
        ),
    ]
