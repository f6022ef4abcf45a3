"""Tampering with the audit trail the way someone with the database owner's access would.

Raw SQL past the ORM, with the trail's triggers out of the way first: on PostgreSQL the owner
(or a superuser) disables them; on SQLite, whoever can write the file drops them and puts them
back after.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

AUDIT_TABLES = ("approvals_auditrecord", "approvals_auditchainhead")


def tamper(sql: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            cursor.execute(sql, params)
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            return
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s, %s)",
            list(AUDIT_TABLES),
        )
        triggers = cursor.fetchall()
        for name, _ in triggers:
            cursor.execute(f"DROP TRIGGER {name}")
        cursor.execute(sql, params)
        for _, create in triggers:
            cursor.execute(create)


@contextmanager
def wipe_refused() -> Iterator[None]:
    """Take away the test database's allowance to empty the trail (approvals.audit.guards), so
    the guards answer as they do for every other database."""
    settings_dict = connection.settings_dict
    settings_dict["AUDIT_WIPE_ALLOWED"] = False
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET approvals.audit_wipe = 'refused'")
        yield
    finally:
        settings_dict["AUDIT_WIPE_ALLOWED"] = True
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET approvals.audit_wipe = 'allowed'")
