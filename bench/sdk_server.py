"""Server (b): the official SDK's own Streamable HTTP transport, stateless, JSON responses.

``MCPServer.streamable_http_app(stateless_http=True, json_response=True)`` is
the SDK's stateless JSON mode: a request carrying ``MCP-Protocol-Version:
2026-07-28`` goes to its single-exchange path
(``mcp.server._streamable_http_modern.handle_modern_request``), which answers
``application/json`` without any session. The MCPServer is the same
registration the app serves, so only the transport differs.

Run as ``uvicorn bench.sdk_server:app``.
"""

from bench.tools import mcp_server

app = mcp_server().streamable_http_app(stateless_http=True, json_response=True)
