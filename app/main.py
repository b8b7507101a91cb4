"""The ASGI application: FastAPI for /health and /, the lean MCP transport for POST /mcp."""

from __future__ import annotations

import os
import socket

from fastapi import FastAPI


def create_app() -> FastAPI:
    api = FastAPI(title="mcpscale MCP server", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/")
    async def status() -> dict[str, str]:
        return {"instance": os.environ.get("WEBSITE_INSTANCE_ID", "local"), "hostname": socket.gethostname()}

    return api


app = create_app()
