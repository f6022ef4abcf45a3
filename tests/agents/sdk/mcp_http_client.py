"""Call the MCP permission tool over streamable HTTP with the official client, as an MCP client
configured with {"type": "http", "url": ...} does. Run in an author venv:
python mcp_http_client.py URL COMMAND; prints the tool's answer, the JSON text, and nothing else."""

import asyncio
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def ask(url: str, command: str) -> str:
    async with (
        streamable_http_client(url) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(
            "approval_prompt",
            {"tool_name": "Bash", "input": {"command": command}, "tool_use_id": "toolu_http"},
        )
        return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(ask(sys.argv[1], sys.argv[2])), flush=True)
