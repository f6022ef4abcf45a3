"""Call the MCP server's ask_human tool over stdio, as an MCP client does, and print the result
as JSON ({"is_error", "text"}); with a number of seconds, give up after them instead and print
"gave up". Run in an author venv: python mcp_ask_client.py [SECONDS]."""

import asyncio
import json
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SCHEMA = {
    "type": "object",
    "properties": {"region": {"type": "string", "enum": ["eu-west-1", "us-east-1"]}},
    "required": ["region"],
}


async def ask(give_up_after: float | None) -> None:
    server = StdioServerParameters(
        command="approval-console-mcp",
        env={
            k: v for k, v in os.environ.items() if k.startswith("APPROVAL_CONSOLE_") or k == "PATH"
        },
    )
    arguments = {"question": "Which region for the new cluster?", "answer_schema": SCHEMA}
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        if give_up_after is None:
            result = await session.call_tool("ask_human", arguments)
            text = "".join(getattr(block, "text", "") for block in result.content)
            print(json.dumps({"is_error": bool(result.is_error), "text": text}), flush=True)
            return
        with anyio.move_on_after(give_up_after):
            await session.call_tool("ask_human", arguments)
            raise AssertionError("the tool answered before anyone did")
        await anyio.sleep(1)  # let the server see the cancellation before the session closes
    print("gave up", flush=True)


if __name__ == "__main__":
    asyncio.run(ask(float(sys.argv[1]) if len(sys.argv) > 1 else None))
