"""Waiting on a condition instead of sleeping for a guessed time.

A fixed sleep ("the poll is parked by now") is either too long, and the suite crawls, or too
short on a busy machine, and the test checks something else than it says. These poll for the
condition itself with a deadline, and fail naming what never happened.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from django.db import connection

from approvals import realtime


def wait_until(
    condition: Callable[[], object], *, timeout: float = 10.0, what: str = "the condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


async def async_wait_until(
    condition: Callable[[], object | Awaitable[object]],
    *,
    timeout: float = 10.0,
    what: str = "the condition",
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        met = condition()
        if isinstance(met, Awaitable):
            met = await met
        if met:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.01)


def parked_polls(code: object) -> int:
    """How many long polls for the request `code` this process's servers hold parked.

    A parked poll is registered with its event loop's resolution listener, so a decision from
    now on wakes it (it registers before it reads the request: no wake-up is lost). Counts the
    in-process servers only (the `live_console` fixture), not other processes'.
    """
    while True:
        try:
            listeners = list(realtime._listeners.values())
            return sum(len(listener.waiters.get(str(code), ())) for listener in listeners)
        except RuntimeError:  # the server's loop changed the dict while we read it: read again
            continue


def wait_until_parked(code: object, count: int = 1, *, timeout: float = 10.0) -> None:
    """Block until `count` long polls for `code` are parked in this process's servers."""
    wait_until(
        lambda: parked_polls(code) >= count,
        timeout=timeout,
        what=f"{count} long poll(s) parking on {code}",
    )


def a_query_waits_on_a_lock(timeout: float = 10) -> bool:
    """Whether, within `timeout`, some PostgreSQL session of this database waits on a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] > 0:
                return True
        time.sleep(0.02)
    return False
