"""The tools every benchmarked server serves: the app's own MCPServer registration.

Built from the same parts and settings as ``app.main.create_app`` (which keeps
its MCPServer behind the dispatcher), so the SDK transport and the bare
ceiling answer from exactly the tools our transport serves and the
comparison measures the transport only.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from app.handles import HandleCodec
from app.mcp_server import build_mcp_server
from app.primes import PrimeWorkers
from app.settings import Settings


def mcp_server() -> MCPServer:
    settings = Settings.from_env()
    codec = HandleCodec(settings.key_ring, settings.handle_ttl_seconds)
    return build_mcp_server(settings, codec, PrimeWorkers(settings.primes_concurrency))
