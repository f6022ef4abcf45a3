"""var/ (generated SECRET_KEY, embedded database, task queue) is readable by its user only.

Each test starts the real settings in a fresh process, as `make run` does on a new checkout.
"""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def _start(var_dir: Path, connect: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    # A permissive umask, as on many workstations: what the console creates must not inherit it.
    code = "import os; os.umask(0o022); import django; django.setup()"
    if connect:
        code += "; from django.db import connection; connection.ensure_connection()"
    return _run(var_dir, code, **env)


def _run(var_dir: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh process whose settings keep their generated files in `var_dir`."""
    environment = {**os.environ, "CONSOLE_VAR_DIR": str(var_dir), **env}
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "AUDIT_HMAC_KEY",
        "AUDIT_HMAC_RETIRED_KEYS",
        "AUDIT_HMAC_KEY_FILE",
    ):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**environment, "DJANGO_SETTINGS_MODULE": "console.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_creates_var_and_the_sqlite_database_for_its_user_only(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    started = _start(var_dir)
    assert started.returncode == 0, started.stderr[-2000:]
    assert _mode(var_dir) == 0o700
    assert _mode(var_dir / "console.sqlite3") == 0o600
    assert _mode(var_dir / "secret_key") == 0o600
    assert _mode(var_dir / "audit_hmac_keys") == 0o600


def test_it_tightens_a_var_and_database_an_older_version_left_open(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    var_dir.chmod(0o755)
    database = var_dir / "console.sqlite3"
    database.touch()
    database.chmod(0o644)
    started = _start(var_dir)
    assert started.returncode == 0, started.stderr[-2000:]
    assert (_mode(var_dir), _mode(database)) == (0o700, 0o600)


def _start_with_servers(var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # PostgreSQL and Redis configured (never reached: settings alone do not connect).
    servers = {
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    return _start(var_dir, connect=False, **servers, **env)


def test_it_tightens_var_in_the_postgresql_mode_too(tmp_path: Path) -> None:
    # There var/ holds only the generated key, made with the umask before the database settings.
    var_dir = tmp_path / "var"
    started = _start_with_servers(var_dir)
    assert started.returncode == 0, started.stderr[-2000:]
    assert _mode(var_dir) == 0o700


def test_it_warns_when_var_is_open_and_cannot_be_tightened(tmp_path: Path) -> None:
    # An immutable var/ stands for one the console may not change (another owner, a read-only
    # mount): even root cannot chmod it, so the console must say so rather than go on silently.
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    var_dir.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(var_dir)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root and a filesystem that supports it")
    try:
        # Every secret from the environment: nothing needs writing into the immutable var/.
        started = _start_with_servers(
            var_dir, SECRET_KEY="not-a-secret", AUDIT_HMAC_KEY="not-a-secret-either-" + "0" * 32
        )
    finally:
        subprocess.run(["chattr", "-i", str(var_dir)], check=True)
    assert started.returncode == 0, started.stderr[-2000:]
    assert f"{var_dir} is mode 755" in started.stderr, started.stderr[-2000:]


def test_a_process_that_loses_the_race_to_write_the_key_uses_the_winners(tmp_path: Path) -> None:
    # `make run` starts the server, the worker and beat at once on a new checkout. Here another
    # process writes its key just after this one found none: both must end up with one key, or
    # links signed by one process are refused by the others.
    var_dir = tmp_path / "var"
    code = textwrap.dedent(
        """
        import os, pathlib
        from django.core.management import utils

        var = pathlib.Path(os.environ["CONSOLE_VAR_DIR"])

        def racing():
            var.mkdir(parents=True, exist_ok=True)
            (var / "secret_key").write_text("w" * 50)  # the other process, just before us
            return "l" * 50

        utils.get_random_secret_key = racing
        import django
        django.setup()
        from django.conf import settings
        print(settings.SECRET_KEY)
        """
    )
    started = _run(var_dir, code)
    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.strip() == "w" * 50
    assert (var_dir / "secret_key").read_text() == "w" * 50
    assert [path.name for path in var_dir.iterdir() if path.name.startswith("tmp")] == []
