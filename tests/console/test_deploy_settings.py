"""The production settings pass Django's deployment checks, and HTTPS means HSTS too.

Settings are read once, at import, from the environment: each case runs a fresh interpreter
with the environment an operator would give (README, "Operations"; SECURITY.md).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What README and SECURITY.md list for production (besides DATABASE_URL / REDIS_URL, which no
# check reads).
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 20 + "-a-long-random-production-secret-key-0123456789",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "approvals.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://approvals.example.com",
    "SITE_URL": "https://approvals.example.com",
    "SECURE_COOKIES": "true",
    "BEHIND_PROXY": "true",
    # Notifications and password reset need a mail relay; without one, mail only reaches the log.
    "EMAIL_HOST": "smtp.example.com",
}


def _run(code: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # Only what an operator sets, not this test run's environment (its DATABASE_URL, or
    # variables test harnesses set such as DJANGO_ALLOW_ASYNC_UNSAFE); the embedded database
    # under tmp_path, since the checks read settings only.
    clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    clean.update(env, CONSOLE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="console.settings")
    return subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def _warning_ids(output: str) -> set[str]:
    return set(re.findall(r"\(([a-z_]+\.[EW]\d+)\)", output))


def test_it_passes_the_deploy_checks_with_the_production_settings(tmp_path: Path) -> None:
    done = _run(["manage.py", "check", "--deploy"], PRODUCTION_ENV, tmp_path)
    output = done.stdout + done.stderr
    # drf-spectacular's schema notes (views it cannot describe) are about documentation, not
    # deployment safety; every other check, Django's security ones included, must be silent.
    found = {check for check in _warning_ids(output) if not check.startswith("drf_spectacular.")}
    assert found == set(), output
    assert done.returncode == 0, output


def test_it_names_what_is_missing_without_secure_cookies(tmp_path: Path) -> None:
    env = {**PRODUCTION_ENV, "SECURE_COOKIES": "false"}
    done = _run(["manage.py", "check", "--deploy"], env, tmp_path)
    found = _warning_ids(done.stdout + done.stderr)
    # HSTS, the redirect and both cookies: the check is not trivially silent.
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= found


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "max-age=31536000; includeSubDomains"),
        (
            {"SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"},
            "max-age=600",
        ),
    ],
)
def test_it_sends_hsts_with_secure_cookies(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz', secure=True, HTTP_HOST='approvals.example.com');"
        "print(r.headers.get('Strict-Transport-Security'));"
        "r = Client().get('/accounts/login/', HTTP_HOST='approvals.example.com');"
        "print(r.status_code, r.headers.get('Location'))"
    )
    done = _run(["-c", script], {**PRODUCTION_ENV, **extra}, tmp_path)
    assert done.returncode == 0, done.stderr
    hsts, redirect = done.stdout.strip().splitlines()[-2:]
    assert hsts == expected
    # Plain HTTP is sent to HTTPS.
    assert redirect == "301 https://approvals.example.com/accounts/login/"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_it_leaves_health_checks_on_plain_http_for_load_balancers(
    tmp_path: Path, path: str
) -> None:
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        f"r = Client().get('{path}', HTTP_HOST='approvals.example.com');"
        "print(r.status_code)"
    )
    done = _run(["-c", script], PRODUCTION_ENV, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] in {"200", "503"}


@pytest.mark.parametrize(("setting", "threshold"), [(None, "0"), ("false", "None")])
def test_prepared_statements_follow_their_setting(
    setting: str | None, threshold: str, tmp_path: Path
) -> None:
    # console/hot_statements.py: off for a connection pooler that cannot keep them.
    env = {"DATABASE_URL": "postgres://console@db.example.com/console"}
    if setting is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = setting
    shown = _run(
        ["-c", "from django.conf import settings; "
         "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"],
        env,
        tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == threshold
