"""The check that fails a test whose threads keep a database connection (tests/conftest.py)."""

import asyncio
import threading

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections

from tests.thread_connections import ThreadConnectionWatch, close_harness_connections


def _in_thread(function, name: str) -> None:
    thread = threading.Thread(target=function, name=name)
    thread.start()
    thread.join(timeout=10)


def test_it_names_a_thread_that_keeps_its_connection(db) -> None:
    with ThreadConnectionWatch() as watch:
        _in_thread(User.objects.count, "forgetful")
    try:
        assert watch.left_open(grace=0) == ["forgetful"]
    finally:
        watch.close_left_open()
    assert watch.left_open(grace=0) == []


def test_it_passes_a_thread_that_closes_its_connection(db) -> None:
    def count_and_close() -> None:
        try:
            User.objects.count()
        finally:
            connections.close_all()

    with ThreadConnectionWatch() as watch:
        _in_thread(count_and_close, "tidy")
    assert watch.left_open(grace=0) == []


def test_the_harness_closes_the_connection_of_an_async_tests_sync_calls(db) -> None:
    with ThreadConnectionWatch() as watch:
        asyncio.run(sync_to_async(User.objects.count)())
        assert len(watch.left_open(grace=0)) == 1
        close_harness_connections()
    assert watch.left_open(grace=0) == []
