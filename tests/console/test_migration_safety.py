"""Migrations keep the previous release's servers working (console/migration_safety.py)."""

from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader

from console.migration_safety import operation_problem, unsafe_operations


def test_it_finds_no_unreviewed_contraction_in_new_migrations() -> None:
    problems = unsafe_operations()
    assert problems == [], "\n".join(
        ["Split these into expand now, contract next release (docs/operations.md):"]
        + [str(problem) for problem in problems]
    )


def _state():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return loader.project_state(("approvals", "0018_reason_parts"))


def test_it_flags_drops_renames_and_not_null_without_default() -> None:
    state = _state()
    unsafe = [
        migrations.RemoveField("approvalrequest", "summary"),
        migrations.DeleteModel("team"),
        migrations.RenameField("approvalrequest", "summary", "title"),
        migrations.AddField("approvalrequest", "owner_note", models.TextField()),
        # Django's default is the new code's alone: old servers' inserts still leave it NULL.
        migrations.AddField("approvalrequest", "owner_note", models.TextField(default="")),
        migrations.AlterField("approvalrequest", "confidence", models.FloatField()),
        migrations.AlterField("approvalrequest", "confidence", models.FloatField(default=0.5)),
    ]
    for operation in unsafe:
        assert operation_problem(operation, state, "approvals"), operation.describe()


def test_it_lets_expansions_through() -> None:
    state = _state()
    safe = [
        migrations.AddField("approvalrequest", "owner_note", models.TextField(db_default="")),
        migrations.AddField("approvalrequest", "owner_id", models.IntegerField(null=True)),
        migrations.AddIndex(
            "approvalrequest", models.Index(fields=["tool"], name="approval_tool_idx")
        ),
        migrations.AlterField(
            "approvalrequest", "summary", models.TextField(blank=True, default="")
        ),
    ]
    for operation in safe:
        assert operation_problem(operation, state, "approvals") is None, operation.describe()
