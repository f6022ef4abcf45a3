"""CELERY_BROKER_PREFIX: consoles (or a test's own processes) sharing one Redis database keep
their broker keys apart, so no worker takes another's tasks."""

from pathlib import Path

from tests.console.test_deploy_settings import _run

OPTIONS = (
    "import django; django.setup(); from console.celery import app;"
    "print(app.conf.broker_transport_options.get('global_keyprefix'))"
)


def test_it_puts_every_broker_key_under_the_prefix(tmp_path: Path) -> None:
    redis = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "sqlite:///:memory:"}
    prefixed = _run(["-c", OPTIONS], {**redis, "CELERY_BROKER_PREFIX": "console-b:"}, tmp_path)
    assert prefixed.returncode == 0, prefixed.stderr
    assert prefixed.stdout.strip() == "console-b:"

    # Unset: the keys earlier releases used, so tasks queued across an upgrade are still found.
    default = _run(["-c", OPTIONS], redis, tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "None"
