"""Backup and restore as docs/operations.md says: a pg_dump of a live console, restored with
pg_restore into a new database, passes audit_verify and serves the queue."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from approvals.services import approval_request_approve
from tests.console.test_shutdown import database_url_for_subprocesses
from tests.factories import UserFactory
from tests.postgres_server import _bin_dir

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="backup and restore are PostgreSQL's tools"
    ),
]

BASE_DIR = Path(settings.BASE_DIR)

SERVES_THE_QUEUE = """
import django; django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username="rita"))
page = client.get("/")
print(page.status_code, {codes})
"""


def _submit(agent_client, key: str) -> str:
    response = agent_client.post(
        "/api/v1/requests",
        {"tool": "send_email", "arguments": {"to": "a@example.test"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def test_a_restored_dump_verifies_and_serves_the_queue(agent_client, tmp_path: Path) -> None:
    from approvals.models import ApprovalRequest

    reviewer = UserFactory(username="rita", is_staff=True)
    decided = _submit(agent_client, "decided")
    approval_request_approve(approval=ApprovalRequest.objects.get(code=decided), reviewer=reviewer)
    waiting = _submit(agent_client, "waiting")

    bin_dir = _bin_dir()
    assert bin_dir is not None
    source = database_url_for_subprocesses()
    dump = tmp_path / "console.dump"
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    subprocess.run(
        [str(bin_dir / "pg_dump"), "--format=custom", "--file", str(dump), "--dbname", source],
        check=True, env=env, capture_output=True, timeout=120,
    )  # fmt: skip

    restored_name = f"{connection.settings_dict['NAME']}_restored_{uuid.uuid4().hex[:8]}"
    maintenance = source.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{restored_name}"')
    restored = source.rsplit("/", 1)[0] + f"/{restored_name}"
    try:
        subprocess.run(
            [str(bin_dir / "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", restored,
             str(dump)],
            check=True, env=env, capture_output=True, timeout=300,
        )  # fmt: skip
        console_env = {
            **os.environ,
            "DATABASE_URL": restored,
            "CONSOLE_VAR_DIR": str(tmp_path),
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_LEVEL": "WARNING",
            # The audit keys are backed up beside the dump (docs/operations.md): a restore
            # without them cannot verify the chain, which is the point of keying it.
            "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEYS[-1],
            "AUDIT_HMAC_RETIRED_KEYS": ",".join(settings.AUDIT_HMAC_KEYS[:-1]),
        }
        verified = subprocess.run(
            [sys.executable, "manage.py", "audit_verify"],
            cwd=BASE_DIR, env=console_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        assert "Audit chain intact" in verified.stdout

        script = SERVES_THE_QUEUE.format(codes=f"{waiting!r} in page.content.decode()")
        served = subprocess.run(
            [sys.executable, "-c", script],
            cwd=BASE_DIR, env=console_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert served.returncode == 0, served.stderr
        assert served.stdout.split()[-2:] == ["200", "True"], served.stdout
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)')
