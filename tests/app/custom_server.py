"""A team's own MCP server, as the tests host it with ``--server tests.app.custom_server:server``.

Nothing of the demo: no ``whoami``, no ``tally``, its own name and tools, so
the verification client and the load tests are shown to work for any server.
"""

from mcp.server.mcpserver import MCPServer

SPEC = "tests.app.custom_server:server"

server = MCPServer("acme-tools", version="2.0.0", log_level="WARNING")


@server.tool()
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()
