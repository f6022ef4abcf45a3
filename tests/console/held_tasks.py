"""Tasks for a test's own worker (`celery worker --include tests.console.held_tasks`).

One keeps a pool thread busy until the test says so, as a long delivery does; the other leaves
a file behind, to show the worker still takes tasks from the broker.
"""

import time
from pathlib import Path

from console.celery import app

HOLD_AT_MOST_SECONDS = 120.0


@app.task(name="tests.hold_until_released")
def hold_until_released(started: str, release: str) -> None:
    if Path(started).exists():
        # Put back when the broker went away while it ran, and delivered again: it has held
        # once; holding a second thread would leave none for the test's next task.
        return
    Path(started).touch()
    deadline = time.monotonic() + HOLD_AT_MOST_SECONDS
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@app.task(name="tests.leave_file")
def leave_file(path: str) -> None:
    Path(path).touch()
