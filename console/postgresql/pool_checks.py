"""The pool's check of a connection it hands out: a round trip only when it could tell something.

With CONN_HEALTH_CHECKS, psycopg's pool checks every connection it hands out with a round trip
(ConnectionPool.check_connection). Django takes a connection for each request and gives it back
at the end, so every request paid a round trip for the check: half of what /healthz waits on,
one of the dozen of a lone creation, one per batch of the intake writer.

A connection given back cleanly moments ago, whose socket has nothing unread, is as good as a
checked one: a server that shut down or restarted since has told its connections so (a
termination message, then the socket closed), which shows as input waiting on the socket. With
input waiting, or after FRESH_SECONDS unused, the full check runs as before.

What this cannot see: a server or network that vanished silently (no message, no close) within
the last FRESH_SECONDS. A request on such a connection fails as it would have had the server
vanished a moment later, during the request; the connection is then discarded.
"""

import select
import time
import weakref
from typing import Any

from psycopg_pool import ConnectionPool

FRESH_SECONDS = 1.0

# When each connection was last given back (the backend notes it as it returns one).
_returned_at: "weakref.WeakKeyDictionary[Any, float]" = weakref.WeakKeyDictionary()


def note_returned(conn: Any) -> None:
    """Called as a connection goes back to the pool. Not the pool's `reset` callback: with one,
    the pool returns every connection through a worker thread instead of at once."""
    _returned_at[conn] = time.monotonic()


def returned_moments_ago(conn: Any) -> bool:
    returned_at = _returned_at.get(conn)
    return returned_at is not None and time.monotonic() - returned_at <= FRESH_SECONDS


def check_unless_fresh(conn: Any) -> None:
    """The pool's `check` callback: raises if the connection is unusable (the pool then
    discards it and hands out another)."""
    fresh = returned_moments_ago(conn)
    _returned_at.pop(conn, None)
    if fresh and not _input_waiting(conn):
        return
    ConnectionPool.check_connection(conn)


def _input_waiting(conn: Any) -> bool:
    # An idle connection is sent nothing unasked (the console never LISTENs); anything there
    # is the server saying goodbye, or an end of file.
    # poll, not select: a server holding thousands of sockets gives new connections descriptors
    # above select's limit (1024), where select raises instead of answering.
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))
