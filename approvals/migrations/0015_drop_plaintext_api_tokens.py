"""Delete the reviewer API tokens DRF's authtoken stored in plaintext.

Reviewer tokens are now django-rest-knox tokens, stored as digests. The old keys cannot become
knox tokens (knox needs its own prefix and format, and keeping them would keep plaintext keys in
the database), so they stop working: scripts get a 401 saying to ask for a new token. The table
itself belongs to rest_framework.authtoken, no longer installed; its rows are emptied here so no
plaintext key outlives the upgrade, and the table is left for the operator to drop.
"""

from django.db import migrations


def delete_plaintext_tokens(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    if "authtoken_token" in connection.introspection.table_names():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):
    dependencies = [("approvals", "0014_guardrails_versioned")]

    operations = [migrations.RunPython(delete_plaintext_tokens, migrations.RunPython.noop)]
