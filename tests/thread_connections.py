"""Every thread that opens a database connection closes it again: checked after each test.

Django gives each thread its own connection and closes it only at the end of a request, in a
consumer's `database_sync_to_async`, or when asked. A thread a test starts (`asyncio.to_thread`,
`sync_to_async` in an async test, `threading.Thread`) that touches the database and ends without
closing keeps its connection. With the PostgreSQL pool that connection stays checked out: the
pool never gets the slot back, and the session lives on until the garbage collector happens to
free the dead thread's connection object, at worst after the test database should have been
dropped ("database ... is being accessed by other users"). The console's own threads close
theirs; a test that forgets now fails, naming the thread, instead of warning at the very end.

Two threads belong to the test harness, not to a leak: the main thread, and asgiref's one
process-wide thread, where an async test's synchronous calls run (`sync_to_async`, the ORM's
`a...` methods; Django's request handler and Channels' consumers give their calls threads of
their own and close them). `close_harness_connections()` closes the latter's after each test.
"""

import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def db_to_thread(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """`asyncio.to_thread` for a call that uses the database: the thread closes its connection
    when the call returns (Channels' `database_sync_to_async`), back to the pool."""
    return database_sync_to_async(function, thread_sensitive=False)(*args, **kwargs)


def close_harness_connections() -> None:
    """Close the connection of asgiref's thread for thread-sensitive calls made outside any
    request (an async test's `sync_to_async`): it outlives the test, as the main thread does."""
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


class ThreadConnectionWatch:
    """Records the connections threads other than the main one open while it is active."""

    def __init__(self) -> None:
        self._opened: dict[int, tuple[str, BaseDatabaseWrapper]] = {}

    def __enter__(self) -> "ThreadConnectionWatch":
        connection_created.connect(self._record, weak=False, dispatch_uid=self._uid)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection_created.disconnect(dispatch_uid=self._uid)

    @property
    def _uid(self) -> str:
        return f"thread-connection-watch-{id(self)}"

    def _record(self, sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            self._opened[id(connection)] = (thread.name, connection)

    def left_open(self, grace: float = 2.0) -> list[str]:
        """The threads whose connection is still open once `grace` seconds have passed.

        The wait is for requests still being answered: a server closes the request's connection
        a moment after the client has its response.
        """
        deadline = time.monotonic() + grace
        while True:
            left = [
                name for name, wrapper in self._opened.values() if wrapper.connection is not None
            ]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.01)

    def close_left_open(self) -> None:
        """Close what the threads left open, from here: one test's leak spoils no other test."""
        for _, wrapper in self._opened.values():
            if wrapper.connection is not None:
                wrapper.inc_thread_sharing()
                try:
                    wrapper.close()
                finally:
                    wrapper.dec_thread_sharing()
