"""The examples in agents/sdk/examples/, run as an agent author runs them: each script unchanged,
in a fresh venv with the SDK's wheel and the frameworks' locked releases, against a live console,
while a reviewer decides through the reviewer API. Each test prints how long the example took to
resume after the reviewer's decision (the console's decided_at to the example's own clock; the
issue's target is 100 ms, HumanLayer's polling client aside).

(The MCP permission tool example has tests of its own: test_mcp_permission.py.)"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from approvals.models import ApprovalRequest, RequestOutcome
from tests.agents.sdk.api_reviewer import Decided, approve, approve_with, by_tool, deny
from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, EXAMPLES, AuthorVenv

pytestmark = [pytest.mark.django_db(transaction=True), AUTHOR_VENV_TIMEOUT]

# Generous for a shared, loaded CI machine; a missed wake-up (waiting for the next poll instead)
# takes seconds and still fails.
RESUME_WITHIN = 1.0


def _console_env(live_console: Any, token: str) -> dict[str, str]:
    return {"APPROVAL_CONSOLE_URL": live_console.url, "APPROVAL_CONSOLE_CREDENTIAL": token}


def _outcome(result: subprocess.CompletedProcess) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _resumed_after(example: str, outcome: dict[str, Any], decided: Decided) -> float:
    latency = float(outcome["resumed_at"]) - decided.decided_at
    print(f"{example}: resumed {latency * 1000:.0f} ms after the reviewer's decision")
    return latency


def test_the_decorator_example_runs_with_the_reviewers_changed_arguments(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(approve_with({"payment_id": "pay_7", "amount": 2500, "currency": "EUR"}))
    result = author_venv.run(
        str(EXAMPLES / "decorator.py"), "pay_7", "4900", env=_console_env(live_console, token)
    )
    (decided,) = api_reviewer.join()
    outcome = _outcome(result)

    assert outcome["refunded"] == {"payment_id": "pay_7", "amount": 2500, "currency": "EUR"}
    stored = ApprovalRequest.objects.get()
    # The summary callable got the bound arguments, the default currency included.
    assert (stored.summary, stored.impact) == ("Refund 49.00 EUR", "high")
    assert _resumed_after("decorator", outcome, decided) < RESUME_WITHIN


def test_the_decorator_example_does_not_run_a_denied_call(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(deny("Already refunded by hand."))
    result = author_venv.run(
        str(EXAMPLES / "decorator.py"), "pay_7", "4900", env=_console_env(live_console, token)
    )
    api_reviewer.join()

    outcome = _outcome(result)
    assert "refunded" not in outcome
    assert (outcome["not_run"], outcome["note"]) == ("denied", "Already refunded by hand.")


def test_the_langgraph_example_pauses_and_resumes_with_the_decision(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(approve())
    result = author_venv.run(
        str(EXAMPLES / "langgraph_refund.py"),
        "pay_7",
        "4900",
        env=_console_env(live_console, token),
    )
    (decided,) = api_reviewer.join()
    outcome = _outcome(result)

    assert outcome["paused"] is True  # graph.invoke returned on the interrupt, nothing blocked
    assert 'paused on issue_refund {"payment_id": "pay_7", "amount": 4900}' in result.stderr
    assert outcome["refunded"] == {"payment_id": "pay_7", "amount": 4900}
    assert ApprovalRequest.objects.count() == 1  # the node's re-run found its request
    reported = RequestOutcome.objects.get()  # run_approved told the console what happened
    assert (reported.status, reported.result) == (
        "succeeded",
        {"refund_id": "re_pay_7", "amount": 4900},
    )
    assert _resumed_after("LangGraph", outcome, decided) < RESUME_WITHIN


def test_the_langchain_example_resumes_the_middleware_with_the_decisions(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    decide = by_tool(
        {
            "issue_refund": approve_with({"payment_id": "pay_7", "amount": 2500}),
            "send_email": deny("Not before the refund lands."),
        }
    )
    api_reviewer.decide(decide, decide)
    result = author_venv.run(
        str(EXAMPLES / "langchain_hitl.py"), "pay_7", "4900", env=_console_env(live_console, token)
    )
    decided = api_reviewer.join()
    outcome = _outcome(result)

    # HumanInTheLoopMiddleware (batched: one interrupt, two actions) ran the reviewer's edit and
    # told the model the email was rejected, with the reviewer's reason.
    assert outcome["tools"]["issue_refund"].endswith("refunded 2500 on pay_7")
    assert outcome["tools"]["send_email"] == (
        "User rejected the tool call for `send_email` with reason: "
        "Not approved in the approval console (denied): Not before the refund lands."
    )
    assert outcome["final"] == "Done."
    assert ApprovalRequest.objects.count() == 2
    # The example reports what the approved call did: the tool's answer, without the notice the
    # middleware puts before it for the model. A denial reports nothing.
    refund = ApprovalRequest.objects.get(tool="issue_refund")
    assert (refund.outcome.status, refund.outcome.result) == ("succeeded", "refunded 2500 on pay_7")
    assert not ApprovalRequest.objects.filter(tool="send_email", outcome__isnull=False).exists()
    last = max(decided, key=lambda d: d.decided_at)
    assert _resumed_after("LangChain", outcome, last) < RESUME_WITHIN


def test_the_openai_agents_example_resumes_a_saved_run_in_a_new_process(
    live_console, sdk_agent, api_reviewer, author_venv: AuthorVenv, tmp_path: Path
) -> None:
    _, token = sdk_agent
    env = _console_env(live_console, token)
    saved = tmp_path / "run.json"
    example = str(EXAMPLES / "openai_agents_durable.py")

    started = _outcome(author_venv.run(example, "start", str(saved), "ticket-4711", env=env))
    # The first process exited with the run paused and its request filed, undecided.
    stored = ApprovalRequest.objects.get()
    assert started == {"paused": True, "requests": {started_call(started): str(stored.code)}}
    assert stored.status == "pending" and saved.exists()

    resuming = author_venv.start(example, "resume", str(saved), env=env)
    assert resuming.stdout is not None
    # Decide once the new process has restored the run and waits (importing the Agents SDK
    # takes seconds): the latency measured is the wait's, not the start-up's.
    assert json.loads(resuming.stdout.readline()) == {"waiting": "ticket-4711"}
    api_reviewer.decide(approve())
    stdout, stderr = resuming.communicate(timeout=100)
    (decided,) = api_reviewer.join()
    outcome = _outcome(
        subprocess.CompletedProcess(resuming.args, resuming.returncode, stdout, stderr)
    )

    assert outcome["final_output"] == "All done."
    assert outcome["tool_outputs"] == ["refunded 4900 on pay_7"]
    assert ApprovalRequest.objects.count() == 1  # the new process found the request, not a twin
    # The process that resolved and ran it told the console what the tool did.
    assert RequestOutcome.objects.get().status == "succeeded"
    assert (stored.summary, stored.impact) == ("Refund 4900 on pay_7", "high")
    assert _resumed_after("OpenAI Agents", outcome, decided) < RESUME_WITHIN


def started_call(started: dict[str, Any]) -> str:
    (call_id,) = started["requests"]
    return str(call_id)


def test_the_humanlayer_example_runs_once_approved(
    live_console, sdk_agent, api_reviewer, tmp_path: Path
) -> None:
    _, token = sdk_agent
    api_reviewer.decide(approve(), long_polls=False)
    # HumanLayer's client is not in the author lock; the console's venv carries the release
    # the compatibility surface is tested with (humanlayer 0.7.9). Outside the repository, so
    # the script imports nothing of the console's.
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "humanlayer_client.py"), "pay_7", "4900"],
        env={
            "PATH": "/usr/bin:/bin",
            "HUMANLAYER_API_BASE": f"{live_console.url}/humanlayer/v1",
            "HUMANLAYER_API_KEY": token,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    (decided,) = api_reviewer.join()
    outcome = _outcome(result)

    assert outcome["refunded"] == {"payment_id": "pay_7", "amount": 4900}
    stored = ApprovalRequest.objects.get()
    assert stored.arguments == {"payment_id": "pay_7", "amount": 4900}
    # HumanLayer's client polls every few seconds on its own schedule.
    assert _resumed_after("HumanLayer", outcome, decided) < 10
