"""Issue 20: an agent author installs the SDK with pip, beside the agent frameworks.

It failed three ways: agents/sdk had no pyproject (`pip install ./agents/sdk` and
`#subdirectory=agents/sdk` failed), the repository root is the console (flat layout, several
top-level packages), and the SDK's import name was `agents`, which the OpenAI Agents SDK owns.
Now agents/sdk is a distribution of its own whose only package is `approval_console`.
"""

import tarfile
import zipfile
from email.parser import Parser

from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, AuthorVenv

pytestmark = AUTHOR_VENV_TIMEOUT


def test_the_wheel_holds_one_typed_package_and_depends_on_httpx(author_venv: AuthorVenv) -> None:
    with zipfile.ZipFile(author_venv.wheel) as wheel:
        names = wheel.namelist()
        (metadata_name,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
        (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()

    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"approval_console", metadata_name.split("/")[0]}
    assert "approval_console/py.typed" in names
    assert "approval_console/adapters/openai_agents.py" in names
    assert metadata["Name"] == "agent-approval-console-sdk"
    requires = metadata.get_all("Requires-Dist")
    assert [r for r in requires if "extra ==" not in r] == ["httpx>=0.28"]
    assert set(metadata.get_all("Provides-Extra")) == {
        "langgraph",
        "langchain",
        "openai-agents",
        "mcp",
    }
    # The MCP server, for Claude Code's --permission-prompt-tool: an extra, and a command.
    assert 'mcp>=2.3; extra == "mcp"' in requires
    assert "approval-console-mcp = approval_console.mcp_server:main" in scripts


def test_the_sdist_builds_the_same_package(author_venv: AuthorVenv) -> None:
    # `python -m build` made the wheel from this sdist; it must carry what the wheel needs.
    with tarfile.open(author_venv.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "src/approval_console/py.typed"} <= names


def test_it_imports_beside_openai_agents_and_langgraph(author_venv: AuthorVenv) -> None:
    script = """
import sys
from importlib.metadata import version

import approval_console, agents, langgraph, langchain
from approval_console import Console, ApprovalDenied
from approval_console.adapters.langchain import review_hitl_interrupts
from approval_console.adapters.langgraph import approval_interrupt
from langchain.agents.middleware import HumanInTheLoopMiddleware
from approval_console.adapters.openai_agents import ConsoleToolApprovals

# `agents` is the OpenAI Agents SDK's, not a copy of this SDK and not the console's app.
assert hasattr(agents, "Runner") and hasattr(agents, "function_tool"), agents.__file__
assert "site-packages" in approval_console.__file__, approval_console.__file__
assert "django" not in sys.modules
assert version("agent-approval-console-sdk") == approval_console.__version__
print("ok", approval_console.__version__)
"""
    result = author_venv.run("-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "ok"
