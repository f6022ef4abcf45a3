"""The console under least privilege: migrated by an owner role, served by an app role.

A database and two roles of its own (unique names), set up by `manage.py db_roles --apply`,
migrated as the owner, then the console's main paths run as the app role in a subprocess: an
agent submits a request through the API, a reviewer approves it, the audit chain verifies.
Then the app role tries what an attacker with its password would, and is refused.
"""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg import sql

from console.db_roles import RoleSetup

ON_POSTGRES = connection.vendor == "postgresql"

BASE_DIR = Path(settings.BASE_DIR)

MAIN_PATHS = """
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from agents.services import agent_create_with_credential
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve

issued = agent_create_with_credential(name="least-privilege-bot")
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
response = client.post(
    "/api/v1/requests",
    {"tool": "send_email", "arguments": {"to": "a@example.test"}},
    format="json",
    HTTP_IDEMPOTENCY_KEY="least-privilege-1",
)
assert response.status_code == 201, response.content
reviewer = get_user_model().objects.create_user("rita", is_staff=True)
approval_request_approve(approval=ApprovalRequest.objects.get(), reviewer=reviewer, note="ok")
call_command("audit_verify")
call_command("audit_anchor")
"""


def _admin_params() -> dict[str, object]:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": "postgres",
    }


@pytest.fixture
def roles() -> Iterator[tuple[RoleSetup, dict[str, str]]]:
    suffix = secrets.token_hex(4)
    setup = RoleSetup(
        database=f"console_lp_{suffix}",
        owner=f"console_lp_owner_{suffix}",
        app=f"console_lp_app_{suffix}",
    )
    passwords = {setup.owner: secrets.token_urlsafe(16), setup.app: secrets.token_urlsafe(16)}
    try:
        call_command(
            "db_roles", apply=True, database=setup.database, owner=setup.owner, app=setup.app
        )
        with psycopg.connect(**_admin_params(), autocommit=True) as admin:
            for role, password in passwords.items():
                admin.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
        yield setup, passwords
    finally:
        with psycopg.connect(**_admin_params(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(setup.database)
                )
            )
            for role in (setup.app, setup.owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _url(setup: RoleSetup, role: str, password: str) -> str:
    params = _admin_params()
    return (
        f"postgres://{role}:{quote(password, safe='')}@{params['host']}:{params['port']}/"
        f"{setup.database}"
    )


def _manage(args: list[str], *, database_url: str, var_dir: Path) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUDIT_HMAC_KEY": "least-privilege-test-key-" + "0" * 40,
        "CONSOLE_VAR_DIR": str(var_dir),
        "DATABASE_POOL_MIN": "1",
    }
    env.pop("REDIS_URL", None)  # the embedded channel layer and Celery transport will do
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_it_prints_the_sql_for_a_dba(capsys) -> None:
    call_command("db_roles", print_sql=True, database="approvals", owner="ops", app="web")
    lines = capsys.readouterr().out.splitlines()
    assert "CREATE DATABASE approvals OWNER ops;" in lines
    assert (
        "ALTER DEFAULT PRIVILEGES FOR ROLE ops IN SCHEMA public "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO web;"
    ) in lines
    # The app role is given rows, never ownership, TRUNCATE or TRIGGER.
    granted_to_web = " ".join(line for line in lines if line.endswith("TO web;"))
    for power in ("ALL PRIVILEGES", "TRUNCATE", "TRIGGER", "OWNER TO web", "CREATE ON"):
        assert power not in granted_to_web
    with pytest.raises(CommandError, match="identifier"):
        call_command("db_roles", print_sql=True, app="web; DROP TABLE x")


@pytest.mark.skipif(not ON_POSTGRES, reason="roles and privileges are PostgreSQL's")
def test_it_runs_the_console_as_an_app_role_that_cannot_touch_the_trail(roles, tmp_path) -> None:
    setup, passwords = roles
    owner_url = _url(setup, setup.owner, passwords[setup.owner])
    app_url = _url(setup, setup.app, passwords[setup.app])

    _manage(["migrate", "--no-input"], database_url=owner_url, var_dir=tmp_path)
    output = _manage(["shell", "-c", MAIN_PATHS], database_url=app_url, var_dir=tmp_path)
    # agent created, credential issued, request submitted, held by policy, approved
    assert "Audit chain intact: 5 records" in output
    params = {**_admin_params(), "dbname": setup.database}

    attempts = [
        "TRUNCATE approvals_auditrecord",
        "TRUNCATE approvals_auditchainhead",
        "ALTER TABLE approvals_auditrecord DISABLE TRIGGER USER",
        "ALTER TABLE approvals_auditrecord DISABLE TRIGGER approvals_auditrecord_append_only",
        "ALTER TABLE approvals_auditrecord ADD COLUMN note text",
        "DROP TRIGGER approvals_auditrecord_append_only ON approvals_auditrecord",
        "UPDATE approvals_auditrecord SET action = 'x'",
        "DELETE FROM approvals_auditrecord",
        "DELETE FROM approvals_auditchainhead",
        "UPDATE approvals_auditchainhead SET last_sequence = 1",
        "CREATE TABLE approvals_shadow (id int)",
    ]
    with psycopg.connect(
        **{**params, "user": setup.app, "password": passwords[setup.app]}, autocommit=True
    ) as app:
        app.execute("SET approvals.audit_wipe = 'allowed'")  # anyone may set it; it is not enough
        for attempt in attempts:
            with pytest.raises(psycopg.Error) as refused:
                app.execute(attempt.encode())
            assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege), (
                f"{attempt}: {refused.value}"
            )
        assert app.execute("SELECT count(*) FROM approvals_auditrecord").fetchone() == (5,)

    # The owner can disable the guards (that is what the key and anchors are for), but the
    # guards themselves refuse even the owner.
    with psycopg.connect(
        **{**params, "user": setup.owner, "password": passwords[setup.owner]}, autocommit=True
    ) as owner:
        owner.execute("SET approvals.audit_wipe = 'allowed'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot be truncated"):
            owner.execute("TRUNCATE approvals_auditrecord")
    output = _manage(["audit_verify"], database_url=app_url, var_dir=tmp_path)
    assert "Audit chain intact: 5 records" in output
