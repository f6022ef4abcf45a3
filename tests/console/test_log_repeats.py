"""A dependency that is down logs its error once a minute, not every second."""

import logging

import pytest
from django.conf import settings

from console.log_repeats import OncePerWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "channels_redis.pubsub") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_record_of_a_kind_per_window_and_the_next_counts_the_rest() -> None:
    clock = Clock()
    once = OncePerWindow(seconds=60, clock=clock)
    assert once.filter(_record("Unexpected exception in receive task"))
    passed = []
    for _ in range(5):
        clock.now += 1
        passed.append(once.filter(_record("Unexpected exception in receive task")))
    assert passed == [False] * 5
    clock.now += 60
    later = _record("Unexpected exception in receive task")
    assert once.filter(later)
    assert (
        later.getMessage() == "Unexpected exception in receive task (5 more like this not logged)"
    )


def test_kinds_are_apart_and_arguments_are_kept() -> None:
    once = OncePerWindow(seconds=60, clock=Clock())
    realtime = "approvals.realtime.reviewers"
    first = _record("realtime push failed for approval %s", "a1", name=realtime)
    assert once.filter(first)
    assert first.getMessage() == "realtime push failed for approval a1"
    # Another template, another logger: each has its own window.
    assert once.filter(_record("Unexpected exception in receive task"))
    assert not once.filter(_record("realtime push failed for approval %s", "a2", name=realtime))


@pytest.mark.parametrize(
    "logger", ["channels_redis.pubsub", "channels_redis.core", "approvals.realtime.reviewers"]
)
def test_the_loggers_that_repeat_while_redis_is_down_are_quieted(logger: str) -> None:
    # The settings' LOGGING is what the processes run with: the filter is on these loggers.
    assert settings.LOGGING["loggers"][logger]["filters"] == ["once_per_minute"]
    assert any(isinstance(f, OncePerWindow) for f in logging.getLogger(logger).filters)
