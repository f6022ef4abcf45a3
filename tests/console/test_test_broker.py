"""The suite's tasks stay out of the checkout's broker folder (tests/conftest.py).

Embedded, var/celery/queue is the queue `make run`'s worker consumes. The suite queued its tasks
there too: a console running in the same checkout ran them against its own database, and the
suite's in-process workers found what an earlier run had left.
"""

from pathlib import Path

import pytest
from django.conf import settings

from console.celery import app


@pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("filesystem:"), reason="the embedded broker"
)
def test_a_task_the_suite_queues_lands_outside_the_checkouts_queue() -> None:
    checkout_queue = Path(settings.BASE_DIR) / "var" / "celery" / "queue"
    before = set(checkout_queue.iterdir()) if checkout_queue.is_dir() else set()

    app.send_task("tests.never_run", kwargs={"why": "where the message lands"})

    suite_queue = Path(app.conf.broker_transport_options["data_folder_out"])
    queued = [path for path in suite_queue.iterdir() if b"tests.never_run" in path.read_bytes()]
    try:
        assert len(queued) == 1
        assert not suite_queue.is_relative_to(Path(settings.BASE_DIR) / "var")
        after = set(checkout_queue.iterdir()) if checkout_queue.is_dir() else set()
        assert after - before == set()
    finally:
        for path in queued:  # no in-process worker of a later test meets it
            path.unlink()
