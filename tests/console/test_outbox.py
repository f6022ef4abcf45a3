"""The outbox's shared arithmetic: Retry-After in both of its forms, and the backoff."""

from datetime import timedelta
from email.utils import format_datetime

from django.utils import timezone

from console.outbox import backoff_seconds, retry_after_seconds


def test_it_reads_retry_after_as_seconds() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 1.5 ") == 1.5


def test_it_reads_retry_after_as_an_http_date() -> None:
    later = timezone.now() + timedelta(seconds=90)
    seconds = retry_after_seconds(format_datetime(later, usegmt=True))
    assert seconds is not None and 80 <= seconds <= 90


def test_it_ignores_a_retry_after_it_cannot_read() -> None:
    for value in (None, "", "soon", "-5", "nan", "inf"):
        assert retry_after_seconds(value) is None, value


def test_it_never_waits_less_than_zero_for_a_date_in_the_past() -> None:
    earlier = timezone.now() - timedelta(hours=1)
    assert retry_after_seconds(format_datetime(earlier, usegmt=True)) == 0.0


def test_it_doubles_the_backoff_up_to_its_cap() -> None:
    assert [backoff_seconds(n, base=10, cap=60) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_it_jitters_the_backoff_within_half_to_all_of_it() -> None:
    delays = [backoff_seconds(3, base=5, cap=3600, jitter=True) for _ in range(200)]
    assert all(10 <= delay <= 20 for delay in delays)
    assert len(set(delays)) > 1
