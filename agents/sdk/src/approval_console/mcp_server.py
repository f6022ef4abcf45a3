"""An MCP server that asks the approval console before a tool runs: Claude Code's permission
prompt tool, and any MCP client's.

    pip install "agent-approval-console-sdk[mcp]"
    APPROVAL_CONSOLE_URL=https://console.example APPROVAL_CONSOLE_CREDENTIAL=acs_… \\
        approval-console-mcp                      # stdio (what Claude Code starts)
    approval-console-mcp --transport streamable-http --port 8765   # http://127.0.0.1:8765/mcp

Claude Code calls the `approval_prompt` tool with the tool it wants to run and that tool's input
(`--permission-prompt-tool mcp__approval-console__approval_prompt`). The tool creates an approval
request in the console, waits for a reviewer (a long poll: the answer arrives as the reviewer
clicks), and answers Claude Code's contract as JSON text:

    {"behavior": "allow", "updatedInput": {...}}  the approved input (the reviewer's, if changed)
    {"behavior": "deny", "message": "..."}        the reviewer's note, or why there is no decision

Fail closed: a denial, an expiry, a cancellation, an unreachable console or any error is a deny.

The `ask_human` tool asks reviewers a question with a JSON Schema for the answer (a form in the
console) and returns the validated answer as JSON text; declined, expired, cancelled or
unreachable, it returns an error result and no answer (docs/questions.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any, Literal

import anyio

from ._version import __version__
from .client import AsyncConsole, Timeout
from .errors import ApprovalNotGranted, ConsoleError
from .models import Decision

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as error:  # pragma: no cover - the extra names the fix
    raise ImportError(
        'The MCP server needs the mcp package: pip install "agent-approval-console-sdk[mcp]"'
    ) from error

SERVER_NAME = "approval-console"
PERMISSION_TOOL = "approval_prompt"
ASK_TOOL = "ask_human"
# The console's own deadline for a request the server creates: how long a person has to decide.
DEFAULT_TIMEOUT = "10m"

logger = logging.getLogger(__name__)


def allow(updated_input: dict[str, Any]) -> str:
    return json.dumps({"behavior": "allow", "updatedInput": updated_input})


def deny(message: str) -> str:
    return json.dumps({"behavior": "deny", "message": message})


def permission_answer(decision: Decision) -> str:
    """Claude Code's answer for a decision: allow only a usable approval, with the arguments the
    reviewer approved (which are the submitted ones unless the reviewer changed them)."""
    if decision.is_usable():
        return allow(decision.approved_arguments or {})
    note = decision.note.strip()
    if decision.status == "denied":
        return deny(f"A reviewer denied this: {note}" if note else "A reviewer denied this.")
    if decision.status == "approved":  # approved, but the window to act has closed
        return deny("The approval expired before the tool could run.")
    if decision.status == "expired":
        return deny("No reviewer decided in time, so the tool was not run.")
    if decision.status == "cancelled":
        return deny("The approval request was cancelled.")
    return deny(f"Not approved (status {decision.status}).")


class PermissionGate:
    """Creates one approval request per permission prompt and waits for its decision."""

    def __init__(
        self,
        console: AsyncConsole,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        impact: str | None = None,
    ) -> None:
        self.console = console
        self.timeout = timeout
        self.impact = impact

    async def ask(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None = None
    ) -> str:
        try:
            approval = await self.console.submit(
                tool_name,
                tool_input,
                summary=f"Claude Code wants to run {tool_name}",
                impact=self.impact,
                timeout=self.timeout,
                context={"client": "mcp", "tool_use_id": tool_use_id} if tool_use_id else None,
                # The same tool use asked twice (a client retry) is the same request.
                idempotency_key=f"mcp-permission:{tool_use_id}" if tool_use_id else None,
            )
        except ConsoleError as error:
            logger.warning("approval request for %s failed: %s", tool_name, error)
            return deny(f"The approval console could not take the request: {error}")
        try:
            decision = await self.console.wait(approval)
        except anyio.get_cancelled_exc_class():
            # The client gave up (Claude Code interrupted): take the request off the queue, so
            # nobody approves a call that will never run.
            with anyio.CancelScope(shield=True):
                await self._cancel_quietly(approval.id)
            raise
        except (ConsoleError, TimeoutError) as error:
            logger.warning("waiting for approval request %s failed: %s", approval.id, error)
            return deny(f"No decision could be had from the approval console: {error}")
        return permission_answer(decision)

    async def _cancel_quietly(self, request_id: str) -> None:
        try:
            await self.console.cancel(request_id)
        except ConsoleError as error:
            logger.warning("could not cancel approval request %s: %s", request_id, error)


class QuestionNotAnswered(Exception):
    """No answer to give the client: the tool call ends as an error result with this message."""


async def ask_human(
    console: AsyncConsole,
    question: str,
    answer_schema: dict[str, Any],
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    impact: str | None = None,
) -> str:
    """Ask reviewers and wait: the answer as JSON text, or QuestionNotAnswered (fail closed)."""
    try:
        approval = await console.submit_question(
            question, answer_schema=answer_schema, timeout=timeout, impact=impact
        )
    except ConsoleError as error:
        logger.warning("question failed: %s", error)
        raise QuestionNotAnswered(
            f"The approval console could not take the question: {error}"
        ) from None
    try:
        decision = await console.wait(approval)
    except anyio.get_cancelled_exc_class():
        # The client gave up: take the question off the queue, nobody answers it for nothing.
        with anyio.CancelScope(shield=True):
            try:
                await console.cancel(approval.id)
            except ConsoleError as error:
                logger.warning("could not cancel question %s: %s", approval.id, error)
        raise
    except (ConsoleError, TimeoutError) as error:
        raise QuestionNotAnswered(
            f"No answer could be had from the approval console: {error}"
        ) from None
    try:
        return json.dumps(decision.answer_or_raise())
    except ApprovalNotGranted as refusal:
        raise QuestionNotAnswered(str(refusal)) from None


def build_server(gate: PermissionGate) -> MCPServer:
    server: MCPServer = MCPServer(
        SERVER_NAME,
        version=__version__,
        instructions="Ask a person in the approval console before running a tool, or ask "
        "them a question.",
    )

    # Claude Code's contract: the arguments are named tool_name, input and tool_use_id, and the
    # answer is one text block holding the JSON, hence no structured output.
    @server.tool(
        name=PERMISSION_TOOL,
        description="Ask a reviewer in the approval console whether a tool call may run. "
        'Answers JSON text: {"behavior": "allow", "updatedInput": {...}} or '
        '{"behavior": "deny", "message": "..."}.',
        structured_output=False,
    )
    async def approval_prompt(
        tool_name: str, input: dict[str, Any], tool_use_id: str | None = None
    ) -> str:
        return await gate.ask(tool_name, input, tool_use_id)

    @server.tool(
        name=ASK_TOOL,
        description="Ask a person in the approval console a question. `answer_schema` is a JSON "
        "Schema for the answer (an object schema becomes a form, one field per property). "
        "Returns the answer as JSON text, valid against the schema; an error result if the "
        "person declines, nobody answers in time, or the console cannot be reached.",
        structured_output=False,
    )
    async def ask_human_tool(question: str, answer_schema: dict[str, Any]) -> str:
        try:
            return await ask_human(
                gate.console, question, answer_schema, timeout=gate.timeout, impact=gate.impact
            )
        except QuestionNotAnswered as error:
            # A raised error becomes the call's error result (isError), the message its text.
            raise ToolError(str(error)) from None

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="approval-console-mcp",
        description="An MCP server whose approval_prompt tool asks the approval console. The "
        "console's URL and the agent credential come from APPROVAL_CONSOLE_URL and "
        "APPROVAL_CONSOLE_CREDENTIAL.",
    )
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http only")
    parser.add_argument("--port", type=int, default=8765, help="streamable-http only")
    parser.add_argument(
        "--timeout",
        default=os.environ.get("APPROVAL_CONSOLE_TIMEOUT", DEFAULT_TIMEOUT),
        help="how long reviewers have to decide, e.g. 90s, 10m (default %(default)s)",
    )
    parser.add_argument("--impact", default=os.environ.get("APPROVAL_CONSOLE_IMPACT"))
    options = parser.parse_args(argv)

    # Logs to stderr: on stdio, stdout carries the protocol.
    logging.basicConfig(level=logging.WARNING)
    console = AsyncConsole()  # the url and credential from the environment, or a clear error
    server = build_server(PermissionGate(console, timeout=options.timeout, impact=options.impact))
    transport: Literal["stdio", "streamable-http"] = options.transport
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=options.host, port=options.port)


if __name__ == "__main__":
    main()
