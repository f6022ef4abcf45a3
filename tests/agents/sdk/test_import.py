"""The SDK is for agent code: it must import and work without Django installed or configured.

These run the SDK as installed in this venv (`make install` installs agents/sdk editable), from
a directory outside the repository, so nothing of the console is importable by accident.
tests/agents/sdk/test_distribution.py installs the built wheel into a venv without Django."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import sys
from approval_console import Console, AsyncConsole, Decision, ApprovalDenied
from approval_console.adapters import langgraph, openai_agents
assert "django" not in sys.modules, "the SDK imported Django"
assert "langgraph" not in sys.modules and "approval_console.adapters.openai_agents" in sys.modules
assert "agents" not in sys.modules, "the SDK imported something named agents"
console = Console("http://127.0.0.1:9", "aac_test")
print("ok", type(console).__name__)
"""


def test_it_imports_without_django(tmp_path: Path) -> None:
    # A `django` that explodes on import, first on the path: any Django import fails loudly.
    fake = tmp_path / "django"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('Django must not be imported')\n")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # The repository is not on the path: the SDK comes from its installed distribution.
    env["PYTHONPATH"] = str(tmp_path)

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok Console"


def test_it_fails_loudly_when_the_fake_django_is_imported(tmp_path: Path) -> None:
    # The guard above must be able to fail: importing the Django side does.
    fake = tmp_path / "django"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('Django must not be imported')\n")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])

    result = subprocess.run(
        [sys.executable, "-c", "import agents.models"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Django must not be imported" in result.stderr
