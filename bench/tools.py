"""The tools every benchmarked server serves: the bundled demo's MCPServer registration.

The same `app.demo.server.build_server` the app serves by default, so the SDK
transport and the bare ceiling answer from exactly the tools our transport
serves and the comparison measures the transport only.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from app.demo.server import DemoSettings, build_server


def mcp_server() -> MCPServer:
    return build_server(DemoSettings.from_env())
