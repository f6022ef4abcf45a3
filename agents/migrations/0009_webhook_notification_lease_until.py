"""The AAP webhook outbox's claim column takes the one outbox's name (console.outbox.OutboxRow):
a rename, so rows keep their leases."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0008_instance_credential_salt"),
    ]

    operations = [
        migrations.RenameField(
            model_name="webhooknotification",
            old_name="claimed_until",
            new_name="lease_until",
        ),
    ]
