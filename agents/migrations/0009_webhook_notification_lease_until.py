"""The AAP webhook outbox's claim field takes the one outbox's name (console.outbox.OutboxRow),
in Python only: the column keeps its name, claimed_until, so the previous release's servers go on
working during a rolling upgrade, and rows keep their leases."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0008_instance_credential_salt"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(
                    model_name="webhooknotification",
                    old_name="claimed_until",
                    new_name="lease_until",
                ),
                migrations.AlterField(
                    model_name="webhooknotification",
                    name="lease_until",
                    field=models.DateTimeField(blank=True, db_column="claimed_until", null=True),
                ),
            ],
            database_operations=[],
        ),
    ]
