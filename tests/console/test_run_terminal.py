"""`make run` at a terminal: links that follow PORT, and no warnings that are not news.

Settings are read once, at import, from the environment: each case runs a fresh interpreter
with the environment `make run` gives its processes (embedded: no DATABASE_URL, no REDIS_URL).
"""

from pathlib import Path

from tests.console.test_deploy_settings import _run as _run_python


def _run(script: str, env: dict[str, str], tmp_path: Path):
    # A fresh interpreter with only the environment given (test_deploy_settings._run).
    return _run_python(["-c", script], env, tmp_path)


SITE_URL = (
    "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"
)


def test_links_follow_the_console_port(tmp_path: Path) -> None:
    # `PORT=8765 make run` hands every process CONSOLE_PORT=8765 (console/Procfile).
    moved = _run(SITE_URL, {"CONSOLE_PORT": "8765"}, tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == "http://127.0.0.1:8765"

    default = _run(SITE_URL, {}, tmp_path)
    assert default.stdout.strip() == "http://127.0.0.1:8000"

    # A SITE_URL that is set is the public address, whatever port the process listens on.
    public = _run(
        SITE_URL, {"CONSOLE_PORT": "8765", "SITE_URL": "https://approvals.example.com/"}, tmp_path
    )
    assert public.stdout.strip() == "https://approvals.example.com"


def test_the_embedded_broker_connects_without_a_warning(tmp_path: Path) -> None:
    # What a worker, beat and a server do when they first connect: kombu clones the connection,
    # and warned "No hostname was supplied. Reverting to default 'localhost'" on each.
    script = (
        "import logging, django; django.setup();"
        "from console.celery import app;"
        "records = [];"
        "handler = logging.Handler(); handler.emit = records.append;"
        "logging.getLogger('kombu').addHandler(handler);"
        "logging.getLogger('kombu').setLevel(logging.DEBUG);"
        "connection = app.connection_for_write(); connection.clone().close(); connection.close();"
        "app.send_task('approvals.expire_overdue_requests');"
        "print([r.getMessage() for r in records if r.levelno >= logging.WARNING])"
    )
    done = _run(script, {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
