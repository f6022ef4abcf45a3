"""The two ways past the audit trail's database guards: flushing a test database, and the prune.

Migration 0017 makes the database refuse TRUNCATE of the trail (PostgreSQL) and DELETE of it
(SQLite). Django's test runner empties every table between transactional tests with exactly
those statements, so a test database is configured with `"AUDIT_WIPE_ALLOWED": True` in its
DATABASES entry (tests/conftest.py), and nothing else sets it. On PostgreSQL the trigger also
requires a superuser, who could drop it anyway; on SQLite anyone with the file could.

The prune (`manage.py audit_archive`, approvals.audit.prune) deletes archived records through
`audit_prune_allowed`, inside its transaction; migration 0026 says what the guard then checks.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection as default_connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

# Where a SQLite connection keeps the prune's allowance: on the connection, so no other
# connection (another thread's) ever sees it.
_PRUNE_THROUGH = "approvals_audit_prune_through"


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
        connection.connection.create_function(
            "approvals_audit_prune_through", 0, lambda: getattr(connection, _PRUNE_THROUGH, 0)
        )
    elif connection.vendor == "postgresql" and settings_dict.get("AUDIT_WIPE_ALLOWED"):
        with connection.cursor() as cursor:
            cursor.execute("SET approvals.audit_wipe = 'allowed'")


@contextmanager
def audit_prune_allowed(*, through_sequence: int) -> Iterator[None]:
    """Let this transaction delete audit records up to `through_sequence` (a checkpoint there
    must exist first: the guard checks), and nothing else; taken back on leaving.

    Only for approvals.audit.prune, inside its transaction: on PostgreSQL the setting is
    transaction-local, so even a prune that fails half way leaves nothing allowed behind.
    """
    if not default_connection.in_atomic_block:
        raise RuntimeError("the prune's allowance is for one transaction: open one first")
    with default_connection.cursor() as cursor:
        if default_connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('approvals.audit_prune_through', %s, true)",
                [str(through_sequence)],
            )
        setattr(default_connection, _PRUNE_THROUGH, through_sequence)
        try:
            yield
        finally:
            setattr(default_connection, _PRUNE_THROUGH, 0)
            if default_connection.vendor == "postgresql":
                cursor.execute("SELECT set_config('approvals.audit_prune_through', '', true)")
