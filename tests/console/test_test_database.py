"""Two pytest runs at once in one checkout each get an embedded test database of their own.

They shared var/test_console.sqlite3: one run's setup deleted the file under the other, which
failed with "disk I/O error", saw the other's rows, or lost its database at the other's teardown.
"""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.waits import wait_until

BASE_DIR = Path(settings.BASE_DIR)
SESSION = "tests/console/concurrent_session.py"


def _start_session(name: str, other: str, var_dir: Path, meeting: Path) -> subprocess.Popen[bytes]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    environment.update(
        # One checkout: the same var/, as two terminals in one working copy share it.
        CONSOLE_VAR_DIR=str(var_dir),
        # Given, so the two do not race to generate one: that file is not what this checks.
        SECRET_KEY=settings.SECRET_KEY,
        SESSION_NAME=name,
        OTHER_SESSION_NAME=other,
        SESSION_MEETING_DIR=str(meeting),
        TMPDIR=str(var_dir.parent / "tmp"),
        # Only the plugins the session needs: the installed ones (hypothesis, schemathesis,
        # langsmith, playwright) take seconds to import.
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    # --nomigrations: tables straight from the models, in a second instead of the migrations' ten.
    with (var_dir.parent / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "pytest_django.plugin", "-p",
             "pytest_asyncio.plugin", "-p", "pytest_timeout", "-p", "no:cacheprovider",
             "--nomigrations", f"--basetemp={var_dir.parent / f'basetemp-{name}'}", "-q",
             SESSION],
            cwd=BASE_DIR, env=environment, stdout=log, stderr=log,
        )  # fmt: skip


def test_it_gives_two_runs_at_once_a_database_each(tmp_path: Path) -> None:
    var_dir, meeting, temporary = tmp_path / "var", tmp_path / "meeting", tmp_path / "tmp"
    meeting.mkdir()
    temporary.mkdir()
    sessions = [
        _start_session("first", "second", var_dir, meeting),
        _start_session("second", "first", var_dir, meeting),
    ]
    try:
        # A session that failed never reaches the meeting point: the other would wait for it.
        wait_until(
            lambda: all(s.poll() is not None for s in sessions) or any(s.poll() for s in sessions),
            timeout=90,
            what="both sessions finishing",
        )
    finally:
        for session in sessions:
            if session.poll() is None:
                session.kill()
        for session in sessions:
            session.wait()
    logs = [(tmp_path / f"{name}.log").read_text()[-3000:] for name in ("first", "second")]
    assert [session.returncode for session in sessions] == [0, 0], "\n\n".join(logs)
    assert not list(temporary.iterdir()), "a run left its test database behind"
