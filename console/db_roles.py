"""The least-privilege PostgreSQL setup: an owner role that migrates, an app role that serves.

The servers (ASGI, Celery) connect as the app role: it reads and writes rows and nothing else.
Not owning the tables, it cannot ALTER them, DISABLE TRIGGER (so the audit trail's guards bind
it) or TRUNCATE them; it cannot create anything either. `manage.py migrate` runs as the owner,
and default privileges grant the app role the tables and sequences later migrations create.
Nothing the servers run at request time needs more (tests/console/test_db_roles.py runs the
console's main paths under such a role).
"""

import re
from dataclasses import dataclass

# Plain lower-case identifiers only: they are written into SQL unquoted-safe, and a name that
# needs quoting is one an operator would mistype in a connection URL anyway.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class RoleSetup:
    database: str
    owner: str
    app: str
    schema: str = "public"

    def __post_init__(self) -> None:
        for label, name in vars(self).items():
            if not _NAME.fullmatch(name):
                raise ValueError(f"{label} must be a plain lower-case identifier, got {name!r}")

    def cluster_sql(self) -> list[str]:
        """Run by a superuser (or a role with CREATEROLE and CREATEDB), connected anywhere."""
        return [
            f"CREATE ROLE {self.owner} LOGIN",
            f"CREATE ROLE {self.app} LOGIN",
            f"CREATE DATABASE {self.database} OWNER {self.owner}",
        ]

    def database_sql(self) -> list[str]:
        """Run by a superuser connected to the database, before or after the first migrate."""
        owner, app, schema = self.owner, self.app, self.schema
        return [
            f"REVOKE ALL ON DATABASE {self.database} FROM PUBLIC",
            f"GRANT CONNECT ON DATABASE {self.database} TO {app}",
            f"ALTER SCHEMA {schema} OWNER TO {owner}",
            f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC",
            f"GRANT USAGE ON SCHEMA {schema} TO {app}",
            # What exists already (a database migrated before the split) ...
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app}",
            # ... and what the owner's later migrations create.
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        ]
