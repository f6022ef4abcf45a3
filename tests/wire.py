"""What a PostgreSQL connection waits on, seen on the wire through libpq's trace."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """The round trips Django's connection makes meanwhile: one per ReadyForQuery the server
    sends (a simple query, or a batch of extended-protocol messages ended by one Sync). Each
    entry is the first message the client sent in that round trip, for the failure message."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trips: list[str] = []
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        try:
            yield trips
        finally:
            pgconn.untrace()
            trace.seek(0)
            opened = ""
            for line in trace.read().decode(errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) < 4:
                    continue
                direction, message = parts[1], parts[3]
                if direction == "F" and message not in {"Sync", "Flush"}:
                    # The first message names the trip; a COMMIT sent with earlier statements
                    # is named too.
                    if not opened:
                        opened = " ".join(parts[3:])[:160]
                    elif '"COMMIT"' in line and '"COMMIT"' not in opened:
                        opened += ' ... "COMMIT"'
                elif direction == "B" and message == "ReadyForQuery":
                    trips.append(opened)
                    opened = ""
