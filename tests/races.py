"""Race harness: start callables at the same instant, each on its own thread and connection.

On PostgreSQL the threads really run concurrently, each on its own database connection; on
SQLite its locking serializes the writers, which still checks that losers fail cleanly.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection

_NOT_FINISHED = object()


def run_at_once(actions: Sequence[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Run every action on its own thread, released together by a barrier.

    Returns, in the order of `actions`, what each returned or the exception it raised, so the
    caller decides which exceptions are an expected outcome (a conflict) and which a crash. An
    action still running after `timeout` fails the test: a deadlock must not pass unnoticed.
    """
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [_NOT_FINISHED] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = action()
        except BaseException as error:  # handed to the caller: a crash is a result too
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [index for index, result in enumerate(results) if result is _NOT_FINISHED]
    assert not stuck, f"actions {stuck} did not finish within {timeout} s"
    return results


def raised(results: Sequence[Any], *expected: type[BaseException]) -> list[BaseException]:
    """The exceptions among `results` that are not of the `expected` (outcome) types."""
    return [
        result
        for result in results
        if isinstance(result, BaseException) and not isinstance(result, expected)
    ]
