"""A whole pytest session in miniature, run as a subprocess by tests/console/test_test_database.py.

It writes rows under its own name, waits until the other session it was started beside has
written its own, then counts: it must see its own rows and nobody else's. Not named test_*.py,
so the suite never collects it; pytest runs it only when given its path.
"""

import os
import time
from pathlib import Path

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 3


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_it_sees_only_its_own_rows() -> None:
    from django.contrib.auth.models import User

    me, other = os.environ["SESSION_NAME"], os.environ["OTHER_SESSION_NAME"]
    meeting = Path(os.environ["SESSION_MEETING_DIR"])
    for number in range(ROWS):
        UserFactory(username=f"{me}-{number}")
    (meeting / me).touch()
    # Both sessions are now past their database setup and have written: a shared database shows
    # the other's rows, or breaks under the other's setup.
    _wait_for(meeting / other)
    assert sorted(User.objects.values_list("username", flat=True)) == [
        f"{me}-{number}" for number in range(ROWS)
    ]
