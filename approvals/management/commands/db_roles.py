"""Print, or apply, the least-privilege PostgreSQL roles (console/db_roles.py, docs/audit.md)."""

from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from console.db_roles import RoleSetup


class Command(BaseCommand):
    help = (
        "The SQL for an owner role that runs `migrate` and an app role the servers connect as, "
        "which cannot ALTER, TRUNCATE or disable triggers. --print-sql prints it for a DBA; "
        "--apply runs it as the DATABASE_URL user (a superuser). Set the roles' passwords "
        "afterwards (psql: \\password ROLE)."
    )

    def add_arguments(self, parser: Any) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--print-sql", action="store_true")
        action.add_argument("--apply", action="store_true")
        parser.add_argument("--database", default="console")
        parser.add_argument("--owner", default="console_owner")
        parser.add_argument("--app", default="console_app")
        parser.add_argument(
            "--existing-database",
            action="store_true",
            help="the database and roles exist: only grant (e.g. after moving a database over)",
        )

    def handle(self, *args: Any, print_sql: bool, apply: bool, **options: Any) -> None:
        try:
            setup = RoleSetup(
                database=options["database"], owner=options["owner"], app=options["app"]
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        cluster = [] if options["existing_database"] else setup.cluster_sql()
        if print_sql:
            lines = [
                "-- As a superuser, connected to any database:",
                *(f"{statement};" for statement in cluster),
                f"-- As a superuser, connected to {setup.database}:",
                *(f"{statement};" for statement in setup.database_sql()),
            ]
            self.stdout.write("\n".join(lines))
            return
        if connection.vendor != "postgresql":
            raise CommandError("--apply needs DATABASE_URL to name a PostgreSQL server.")
        params = connection.get_connection_params()
        params.pop("pool", None)
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        # The server's maintenance database: the console's may not exist yet.
        with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
            for statement in cluster:
                admin.execute(statement.encode())
        with psycopg.connect(**{**params, "dbname": setup.database}, autocommit=True) as admin:
            for statement in setup.database_sql():
                admin.execute(statement.encode())
        self.stdout.write(
            self.style.SUCCESS(
                f"Roles ready: migrate as {setup.owner}, serve as {setup.app}. "
                "Set their passwords (psql: \\password ROLE)."
            )
        )
