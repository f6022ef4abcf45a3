"""A small MCP server over stdio for the OpenAI Agents adapter's tests: a real MCP server (the MCP
SDK's MCPServer) whose tools an agent reaches through `MCPServerStdio`. `issue_refund` answers; a
`void_charge` that raises becomes an error result (`isError`), as any tool that raises there.
Run in an author venv: python mcp_payments_server.py."""

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("payments")


@server.tool(structured_output=False)
def issue_refund(payment_id: str, amount: int) -> str:
    """Refund a payment."""
    return f"refunded {amount} on {payment_id}"


@server.tool(structured_output=False)
def void_charge(payment_id: str) -> str:
    """Void a charge."""
    raise ToolError(f"card_declined on {payment_id}")


if __name__ == "__main__":
    server.run("stdio")
