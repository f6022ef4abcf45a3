"""The MCP server's ask_human tool, through the real `mcp` client over stdio against the live
console: the answer a reviewer gave as JSON text, an error result when there is none (fail
closed), and the question cancelled when the client gives up."""

import json
from pathlib import Path
from typing import Any

import pytest

from approvals.models import ApprovalRequest
from tests.agents.sdk.api_reviewer import deny
from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, AuthorVenv

pytestmark = [pytest.mark.django_db(transaction=True), AUTHOR_VENV_TIMEOUT]

CLIENT = Path(__file__).with_name("mcp_ask_client.py")


def _ask(author_venv: AuthorVenv, url: str, token: str, *argv: str, **env: str) -> Any:
    result = author_venv.run(
        str(CLIENT),
        *argv,
        env={"APPROVAL_CONSOLE_URL": url, "APPROVAL_CONSOLE_CREDENTIAL": token, **env},
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    return last if last == "gave up" else json.loads(last)


def test_it_returns_the_reviewers_answer(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(lambda _request: ("answer", {"answer": {"region": "eu-west-1"}}))
    result = _ask(author_venv, live_console.url, token)
    api_reviewer.join()

    assert result["is_error"] is False
    assert json.loads(result["text"]) == {"region": "eu-west-1"}
    assert ApprovalRequest.objects.get().kind == "question"


def test_it_is_an_error_when_the_reviewer_declines(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(deny("Ask the platform team."))
    result = _ask(author_venv, live_console.url, token)
    api_reviewer.join()

    assert result["is_error"] is True
    assert "Declined to answer: Ask the platform team." in result["text"]


def test_it_is_an_error_when_nobody_answers_in_time(
    live_console, sdk_agent, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    result = _ask(author_venv, live_console.url, token, APPROVAL_CONSOLE_TIMEOUT="1s")
    assert result["is_error"] is True
    assert "Nobody answered before the deadline" in result["text"]
    assert ApprovalRequest.objects.get().status == "expired"


def test_it_is_an_error_when_the_console_cannot_be_reached(
    sdk_agent, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    result = _ask(author_venv, "http://127.0.0.1:9", token)
    assert result["is_error"] is True
    assert "could not take the question" in result["text"]


def test_it_cancels_the_question_when_the_client_gives_up(
    live_console, sdk_agent, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    assert _ask(author_venv, live_console.url, token, "3") == "gave up"
    assert ApprovalRequest.objects.get().status == "cancelled"
