"""The ASGI application: any `MCPServer` on the lean MCP transport at /mcp, FastAPI for everything else.

`create_app` is the embedding API (``create_app(server=my_mcp_server)``); it wires the parts::

    environment -> Settings
    MCPServer (yours, or MCP_SERVER / --server, default the demo; app.loading)
                -> host_server (shared request-state keys; app.kernel)
                -> Dispatcher (one JSON-RPC message: ladder, fast path, SDK kernel; app.protocol)
                   [+ message middleware]
                -> McpTransport (HTTP for POST /mcp; app.transport)
    FastAPI: /health, / (status page), lifespan (enters the server's own lifespan)

`Router` sends HTTP requests for ``/mcp`` straight to the transport, before
FastAPI's routing and middleware stack (which would cost more than the whole
MCP exchange), and stamps ``X-Served-By`` on FastAPI's responses; the
transport stamps its own. Under ``python -m app`` most POST /mcp requests do
not reach the Router at all: `app.http_protocol` finds the transport as
``Router.mcp`` (at ``Router.mcp_path``) and serves them from the HTTP parser.

Garbage collection: once the server is loaded and started, the lifespan
moves every object alive then (modules, the SDK, the server's tools, the
cached answers) into the collector's permanent generation (``gc.freeze()``,
undone at shutdown). A full collection then walks what requests allocate
rather than the whole loaded heap, whose walk was a pause every other
request waited through: measured with ``python -m app`` under wrk, it set
the p99 latency, and freezing leaves CPU per request unchanged (figures:
bench/RESULTS.md).

Telemetry seam: ``create_app(message_middleware=[...])`` wraps the
dispatcher's per-message handler; each middleware is
``async def mw(exchange, call_next) -> Reply`` (see `app.protocol.Exchange`).
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer

from app import telemetry
from app.kernel import host_server
from app.loading import load_server
from app.protocol import SUPPORTED_VERSIONS, Dispatcher, MessageMiddleware, chain
from app.ratelimit import limiter as ratelimit
from app.settings import Settings, SettingsError, package_build, server_spec
from app.transport import McpTransport

MCP_PATH = "/mcp"


class Router:
    """Top-level ASGI callable: /mcp to the MCP transport, the rest to FastAPI (with X-Served-By)."""

    def __init__(self, mcp: McpTransport, api: FastAPI, dispatcher: Dispatcher, served_by: str) -> None:
        self.mcp = mcp
        self.mcp_path = MCP_PATH
        self.api = api
        self.dispatcher = dispatcher
        self._served_by = (b"x-served-by", served_by.encode("latin-1", "replace"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
        elif scope["path"] == MCP_PATH:
            await self.mcp(scope, receive, send)
        else:
            served_by = self._served_by

            async def stamped(message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), served_by]}
                await send(message)

            await self.api(scope, receive, stamped)


def create_app(
    server: MCPServer | None = None,
    environ: Mapping[str, str] | None = None,
    message_middleware: list[MessageMiddleware] | None = None,
) -> Router:
    """Serve ``server`` (default: the one ``MCP_SERVER`` names, else the bundled demo) as an ASGI app.

    The server is adapted to the fleet in place (`app.kernel.host_server`): serve it from one app only.
    """
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    server = host_server(server if server is not None else load_server(server_spec(env)), settings.request_state_keys)
    try:
        rate_limiter = ratelimit.from_env(env)
    except ValueError as error:  # the spec's and the limiter's own errors name the variable and the allowed values
        raise SettingsError(str(error)) from None
    dispatcher = Dispatcher(server, settings.easy_auth, settings.tool_roles, rate_limiter)
    lowlevel = dispatcher.kernel.lowlevel
    build = package_build()
    liveness = {"status": "ok"} if build is None else {"status": "ok", "build": build}
    identity = {
        "service": server.name,
        "version": server.version,
        "instance": settings.instance_id,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "slot": settings.slot_name,
        "build": build,
        "mcp_endpoint": MCP_PATH,
        "protocol_versions": list(SUPPORTED_VERSIONS),
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lowlevel.lifespan(lowlevel) as state:
            await dispatcher.start(state)
            gc.freeze()  # see the module docstring, Garbage collection
            try:
                yield
            finally:
                gc.unfreeze()

    api = FastAPI(title="mcpscale MCP server", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @api.get("/health")
    async def health() -> dict[str, str]:
        """Liveness for App Service's health check and slot-swap warm-up: no dependencies, no I/O.

        With the package's build id, which the delivery reads to tell which build production serves.
        """
        return liveness

    @api.get("/")
    async def status() -> dict[str, object]:
        """Which instance, process and slot answered (useful behind the load balancer)."""
        return identity

    transport = McpTransport(
        chain(dispatcher.handle, list(message_middleware or [])), settings.origin_allowed, settings.instance_id
    )
    return Router(transport, api, dispatcher, settings.instance_id)


# Telemetry (app.telemetry) contributes its per-message middleware only when
# APPLICATIONINSIGHTS_CONNECTION_STRING is set; otherwise the list is empty and nothing is wrapped.
app = create_app(message_middleware=telemetry.message_middleware())
