"""Upgrades without downtime: a new migration must keep the previous release's servers working.

During a rolling upgrade (docs/operations.md) the new release's migrations run while servers of
the previous release still serve. Those servers know nothing of the new schema, so a migration
may only *expand* it: add tables, nullable columns or columns with a db_default, indexes. Removing
or renaming what they still use, or making a column NOT NULL that they do not fill, breaks them
mid-deploy. Such *contract* steps ship one release later, once no server uses the old shape, and
are reviewed: listed in REVIEWED_CONTRACTIONS with the reason.

tests/console/test_migration_safety.py runs this over every migration newer than the releases
already shipped (SHIPPED_THROUGH); django-migration-linter does the same in SQL terms and could
replace it.
"""

from dataclasses import dataclass

from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.db.models import NOT_PROVIDED

# The newest migration of each app in the last release: shipped, reviewed, never edited again.
SHIPPED_THROUGH = {"approvals": 18, "agents": 8}

# (app, migration name) -> why this contraction is safe (the release before stopped using it).
REVIEWED_CONTRACTIONS: dict[tuple[str, str], str] = {}

OUR_APPS = frozenset(SHIPPED_THROUGH)


@dataclass(frozen=True)
class UnsafeOperation:
    app: str
    migration: str
    operation: str
    reason: str

    def __str__(self) -> str:
        return f"{self.app}.{self.migration}: {self.operation}: {self.reason}"


def _has_db_default(field: object) -> bool:
    # Only a default in the database (db_default) fills the column for servers that do not know
    # it: Django's `default` is applied by the new release's Python code alone.
    return getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED


def operation_problem(
    operation: migrations.operations.base.Operation, state_before: ProjectState, app: str
) -> str | None:
    """Why `operation` would break servers of the previous release; None when it expands."""
    if isinstance(operation, migrations.RemoveField):
        return "drops a column the previous release still reads and writes"
    if isinstance(operation, migrations.DeleteModel):
        return "drops a table the previous release still uses"
    if isinstance(operation, migrations.RenameField | migrations.RenameModel):
        return "renames what the previous release still uses by its old name"
    if isinstance(operation, migrations.AddField):
        field = operation.field
        computed = isinstance(field, models.GeneratedField)  # the database fills it
        if not (field.null or field.many_to_many or computed or _has_db_default(field)):
            return (
                "adds a NOT NULL column without a db_default: the previous release's inserts "
                "leave it empty and fail"
            )
    if isinstance(operation, migrations.AlterField):
        model_state = state_before.models.get((app, operation.model_name_lower))
        was = model_state.fields.get(operation.name_lower) if model_state else None
        if was is not None and was.null and not operation.field.null:
            return (
                "makes a column NOT NULL: the previous release still writes it empty "
                "(backfill and contract in the next release)"
            )
    return None


def unsafe_operations(loader: MigrationLoader | None = None) -> list[UnsafeOperation]:
    """Contractions in our apps' migrations newer than SHIPPED_THROUGH, not yet reviewed."""
    loader = loader or MigrationLoader(None, ignore_no_migrations=True)
    found = []
    for (app, name), migration in sorted(loader.disk_migrations.items()):
        if app not in OUR_APPS or not name[:4].isdigit():
            continue
        if int(name[:4]) <= SHIPPED_THROUGH[app] or (app, name) in REVIEWED_CONTRACTIONS:
            continue
        state = loader.project_state((app, name), at_end=False)
        for operation in migration.operations:
            if problem := operation_problem(operation, state, app):
                found.append(UnsafeOperation(app, name, operation.describe(), problem))
            state = state.clone()
            operation.state_forwards(app, state)
    return found
