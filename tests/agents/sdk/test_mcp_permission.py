"""The MCP permission tool, through the real `mcp` client over stdio against the live console: the
example (agents/sdk/examples/mcp_permission_tool.py) starts `approval-console-mcp` from an agent
author's venv and calls `approval_prompt` as Claude Code's --permission-prompt-tool does, while a
reviewer decides through the reviewer API. Its answer is Claude Code's contract, and no decision
is a deny."""

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from approvals.models import ApprovalRequest
from tests.agents.sdk.api_reviewer import approve, approve_with, deny
from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, EXAMPLES, AuthorVenv
from tests.conftest import _free_port as free_port

pytestmark = [pytest.mark.django_db(transaction=True), AUTHOR_VENV_TIMEOUT]

EXAMPLE = EXAMPLES / "mcp_permission_tool.py"


def _ask(
    author_venv: AuthorVenv, live_console: Any, token: str, command: str, **env: str
) -> dict[str, Any]:
    result = author_venv.run(
        str(EXAMPLE),
        command,
        env={"APPROVAL_CONSOLE_URL": live_console.url, "APPROVAL_CONSOLE_CREDENTIAL": token, **env},
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_it_allows_the_input_a_reviewer_approved(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(approve())
    answer = _ask(author_venv, live_console, token, "rm -rf build/")
    (decided,) = api_reviewer.join()

    assert answer["behavior"] == "allow"
    assert answer["updatedInput"] == {"command": "rm -rf build/"}
    stored = ApprovalRequest.objects.get()
    assert (stored.tool, stored.arguments) == ("Bash", {"command": "rm -rf build/"})
    # One request per tool use: the tool_use_id made its idempotency key.
    assert stored.context["tool_use_id"].startswith("toolu_")
    latency = answer["answered_at"] - decided.decided_at
    print(f"MCP permission tool: allowed {latency * 1000:.0f} ms after the reviewer's decision")
    assert latency < 1.0  # a long poll wakes on the decision; the target is 100 ms


def test_it_allows_the_reviewers_changed_input(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(approve_with({"command": "rm -rf build/tmp/"}, note="Only the temp dir."))
    answer = _ask(author_venv, live_console, token, "rm -rf build/")
    api_reviewer.join()

    assert answer["behavior"] == "allow"
    assert answer["updatedInput"] == {"command": "rm -rf build/tmp/"}


def test_it_denies_with_the_reviewers_note(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(deny("Not on the release branch."))
    answer = _ask(author_venv, live_console, token, "git push --force")
    api_reviewer.join()

    assert answer == {
        "behavior": "deny",
        "message": "A reviewer denied this: Not on the release branch.",
        "answered_at": answer["answered_at"],
    }


def test_it_denies_when_nobody_decides_in_time(
    live_console, sdk_agent, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    answer = _ask(author_venv, live_console, token, "make deploy", APPROVAL_CONSOLE_TIMEOUT="1s")

    assert answer["behavior"] == "deny"
    assert answer["message"] == "No reviewer decided in time, so the tool was not run."
    assert "updatedInput" not in answer
    assert ApprovalRequest.objects.get().status == "expired"


def test_it_denies_when_the_console_cannot_be_reached(sdk_agent, author_venv: AuthorVenv) -> None:
    _, token = sdk_agent
    # Port 9 (discard): nothing listens. Fail closed, with the reason for the person at Claude.
    answer = _ask(author_venv, type("Down", (), {"url": "http://127.0.0.1:9"}), token, "ls")

    assert answer["behavior"] == "deny"
    assert "could not take the request" in answer["message"]


@pytest.fixture
def mcp_http_server(live_console, sdk_agent, author_venv: AuthorVenv):
    """`approval-console-mcp --transport streamable-http`, started from the author venv."""
    _, token = sdk_agent
    port = free_port()
    server = subprocess.Popen(
        [
            *(str(author_venv.bin / "approval-console-mcp"), "--transport", "streamable-http"),
            *("--port", str(port)),
        ],
        env=author_venv.environment(
            {"APPROVAL_CONSOLE_URL": live_console.url, "APPROVAL_CONSOLE_CREDENTIAL": token}
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the MCP server did not start listening"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    server.terminate()
    server.wait(timeout=10)


def test_it_answers_over_streamable_http(
    mcp_http_server, api_reviewer, author_venv: AuthorVenv
) -> None:
    api_reviewer.decide(approve_with({"command": "ls build/"}))
    result = author_venv.run(
        str(Path(__file__).with_name("mcp_http_client.py")), mcp_http_server, "ls", timeout=100
    )
    api_reviewer.join()

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "behavior": "allow",
        "updatedInput": {"command": "ls build/"},
    }
    assert ApprovalRequest.objects.get().arguments == {"command": "ls"}


def test_it_cancels_the_request_when_the_client_gives_up(
    live_console, sdk_agent, author_venv: AuthorVenv
) -> None:
    # Claude Code interrupted: nobody will run the call, so nobody may approve it either.
    _, token = sdk_agent
    result = author_venv.run(
        str(Path(__file__).with_name("mcp_cancelling_client.py")),
        "3",
        env={"APPROVAL_CONSOLE_URL": live_console.url, "APPROVAL_CONSOLE_CREDENTIAL": token},
        timeout=100,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "gave up\n"
    assert ApprovalRequest.objects.get().status == "cancelled"
