"""Ask the MCP permission tool over stdio, then give up before anyone decides, as Claude Code
does when the person interrupts it: print the pending request's tool_use_id and leave. Run in an
author venv: python mcp_cancelling_client.py SECONDS."""

import asyncio
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def ask_then_give_up(after: float) -> None:
    server = StdioServerParameters(
        command="approval-console-mcp",
        env={
            k: v for k, v in os.environ.items() if k.startswith("APPROVAL_CONSOLE_") or k == "PATH"
        },
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        with anyio.move_on_after(after):
            await session.call_tool(
                "approval_prompt",
                {
                    "tool_name": "Bash",
                    "input": {"command": "make deploy"},
                    "tool_use_id": "toolu_x",
                },
            )
            raise AssertionError("the tool answered before anyone decided")
        # Let the server see the cancellation before the session closes.
        await anyio.sleep(1)
    print("gave up", flush=True)


if __name__ == "__main__":
    asyncio.run(ask_then_give_up(float(sys.argv[1])))
