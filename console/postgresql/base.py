"""Django's PostgreSQL backend, failing fast, and saying why, when the database is unusable.

Django opens psycopg's pool on the first query and waits for a connection up to the pool's
timeout. With a database that does not exist, or a server that refuses, the pool only retries
in the background, logging a warning each time, and every caller (`migrate`, the first request,
a task) waits the whole timeout for "couldn't get a connection after 10.00 sec". Asking once,
directly, before the pool opens (console/database.py) answers in milliseconds with the server's
reason, and leaves no pool retrying behind it; after a pool timeout the same question tells a
database gone away from a pool that is merely all in use.

Settings select it for PostgreSQL URLs (ENGINE "console.postgresql"): a subclass, so everything
else is Django's backend unchanged, but for the pool's check of the connections it hands out
(console/postgresql/pool_checks.py), and the statements a transaction defers to its next round
trip (console.hot_statements.statements_deferred): sent before any query of Django's, or with
the COMMIT, and discarded by a rollback.
"""

from typing import Any

from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction
from psycopg_pool import PoolTimeout

from console.database import (
    DatabaseUnavailable,
    connection_failure,
    explain,
    pool_timeout_reason,
)
from console.hot_statements import Statement, deferred_sent
from console.postgresql.pool_checks import check_unless_fresh, note_returned


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict: dict[str, Any], alias: str = "default") -> None:
        super().__init__(settings_dict, alias)
        options = self.settings_dict["OPTIONS"]
        pool = options.get("pool")
        if pool and self.settings_dict["CONN_HEALTH_CHECKS"]:
            # Read by Django when it creates the pool; a check a deployment sets stays.
            options["pool"] = {"check": check_unless_fresh, **({} if pool is True else pool)}
        # Statements that go with the transaction's next round trip (statements_deferred).
        self.deferred_statements: list[Statement] = []

    def _cursor(self, name: str | None = None) -> Any:
        if self.deferred_statements:
            deferred_sent(commit=False)  # what the cursor runs comes after them
        return super()._cursor(name)  # type: ignore[misc]  # Django's, not in django-stubs

    def _commit(self) -> None:
        if self.deferred_statements and self.connection is not None:
            # With the COMMIT, in their round trip. psycopg then has nothing left to commit:
            # calling it would only log a second COMMIT in the query log.
            with debug_transaction(self, "COMMIT"):
                deferred_sent(commit=True)
            return
        super()._commit()  # type: ignore[misc]

    def _rollback(self) -> None:
        self.deferred_statements.clear()  # rolled back unsent: as if they had run
        super()._rollback()  # type: ignore[misc]

    def close(self) -> None:
        self.deferred_statements.clear()
        if self.connection is not None and self.pool is not None:
            note_returned(self.connection)  # Django gives it back to the pool
        super().close()

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = self.pool
        if pool is not None and pool.closed and (failure := connection_failure(conn_params)):
            raise DatabaseUnavailable(failure)
        try:
            return super().get_new_connection(conn_params)
        except PoolTimeout as error:
            assert pool is not None  # only a pool times out
            raise DatabaseUnavailable(
                pool_timeout_reason(pool, conn_params, pool.timeout)
            ) from error
        except self.Database.OperationalError as error:
            if pool is not None:
                raise
            # No pool (the maintenance connection that creates test databases): say why too.
            raise DatabaseUnavailable(explain(error, conn_params)) from error
