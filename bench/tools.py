"""The tools every benchmarked server serves.

PROVISIONAL stand-in until the app exposes its MCPServer: replaced by an
import of the app's own registration so the comparison is the transport only.
"""

from __future__ import annotations

import os
import socket

from mcp.server.mcpserver import MCPServer


def mcp_server() -> MCPServer:
    server = MCPServer("mcpscale", version="0.1.0", log_level="WARNING")

    @server.tool()
    async def whoami() -> dict[str, object]:
        """Which instance answered."""
        return {
            "instance": os.environ.get("WEBSITE_INSTANCE_ID", "local"),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "slot": os.environ.get("MCP_SLOT_NAME", "local"),
        }

    @server.tool()
    async def echo(text: str) -> str:
        """Echo text back."""
        return text

    return server
