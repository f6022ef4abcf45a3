"""The one way past the audit trail's database guards: flushing a test database.

Migration 0017 makes the database refuse TRUNCATE of the trail (PostgreSQL) and DELETE of it
(SQLite). Django's test runner empties every table between transactional tests with exactly
those statements, so a test database is configured with `"AUDIT_WIPE_ALLOWED": True` in its
DATABASES entry (tests/conftest.py), and nothing else sets it. On PostgreSQL the trigger also
requires a superuser, who could drop it anyway; on SQLite anyone with the file could.
"""

from typing import Any

from django.db.backends.signals import connection_created
from django.dispatch import receiver


@receiver(connection_created, dispatch_uid="audit_wipe_guard")
def _audit_wipe_guard(sender: Any, connection: Any, **_: Any) -> None:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        # Registered on every connection, allowed or not: the triggers call it. Read at each
        # call, so a test can take the allowance away to see the guard refuse.
        connection.connection.create_function(
            "approvals_audit_wipe_allowed",
            0,
            lambda: bool(settings_dict.get("AUDIT_WIPE_ALLOWED")),
        )
    elif connection.vendor == "postgresql" and settings_dict.get("AUDIT_WIPE_ALLOWED"):
        with connection.cursor() as cursor:
            cursor.execute("SET approvals.audit_wipe = 'allowed'")
