"""Ask the approval console through its MCP permission tool, as Claude Code does.

Claude Code calls the tool for you (docs/integrations.md:
`--permission-prompt-tool mcp__approval-console__approval_prompt`). This script plays Claude
Code's part with the official MCP client, so you can see the contract without it: it starts
`approval-console-mcp` over stdio, asks whether a Bash command may run, and prints the answer
as Claude Code would read it.

    pip install "agent-approval-console-sdk[mcp]"
    export APPROVAL_CONSOLE_URL=http://127.0.0.1:8000 APPROVAL_CONSOLE_CREDENTIAL=acs_…
    python mcp_permission_tool.py "rm -rf build/"

Then approve, change or deny the request in the console.
"""

import asyncio
import json
import os
import sys
import time
import uuid

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def ask_permission(command: str) -> dict[str, object]:
    server = StdioServerParameters(
        command="approval-console-mcp",
        # The server reads the console's URL, the agent credential and its options
        # (APPROVAL_CONSOLE_TIMEOUT, APPROVAL_CONSOLE_IMPACT) from its environment.
        env={
            key: value
            for key, value in os.environ.items()
            if key.startswith("APPROVAL_CONSOLE_") or key == "PATH"
        },
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(
            "approval_prompt",
            {
                "tool_name": "Bash",
                "input": {"command": command},
                "tool_use_id": f"toolu_{uuid.uuid4().hex}",
            },
        )
        answered_at = time.time()
        # Claude Code's contract: one text block holding the JSON answer.
        answer: dict[str, object] = json.loads(result.content[0].text)  # type: ignore[union-attr]
        return {**answer, "answered_at": answered_at}


if __name__ == "__main__":
    answer = asyncio.run(ask_permission(sys.argv[1] if len(sys.argv) > 1 else "ls"))
    if answer["behavior"] == "allow":
        print(f"allowed: run {answer['updatedInput']}", file=sys.stderr)
    else:
        print(f"denied: {answer['message']}", file=sys.stderr)
    print(json.dumps(answer), flush=True)
