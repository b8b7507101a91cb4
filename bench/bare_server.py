"""Server (c): the ceiling, a bare ASGI JSON-RPC responder with no framework and no SDK per request.

It does the least any JSON-over-HTTP server must do: read the body, parse
the JSON, dispatch on ``method``, build the result and serialize it. The
whoami result (the tool's identity, fixed at start-up as the app's tool
fixes it) is wrapped and serialized per request in the shape the SDK gives a
tool result; the tools/list result (which never changes) is serialized once at
start-up from the same MCPServer registration and spliced in, as a cached
response would be. No header or ``_meta`` validation: that is the point of a
ceiling.

Run as ``uvicorn bench.bare_server:app``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket

from app.demo.server import SERVER_NAME, SERVER_VERSION
from bench.tools import mcp_server

_SERVER_INFO = {"io.modelcontextprotocol/serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION}}
_IDENTITY = {
    "instance_id": os.environ.get("WEBSITE_INSTANCE_ID", "local"),
    "hostname": socket.gethostname(),
    "site_name": os.environ.get("WEBSITE_SITE_NAME", "local"),
    "slot_name": os.environ.get("MCP_SLOT_NAME", "local"),
    "pid": os.getpid(),
}


def _tools_list_result() -> bytes:
    tools = asyncio.run(mcp_server().list_tools())
    result = {
        "tools": [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools],
        "resultType": "complete",
        "ttlMs": 60_000,
        "cacheScope": "public",
        "_meta": _SERVER_INFO,
    }
    return json.dumps(result, separators=(",", ":")).encode()


_TOOLS_LIST = _tools_list_result()
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _whoami() -> dict[str, object]:
    return {
        "content": [{"type": "text", "text": json.dumps(_IDENTITY, indent=2)}],
        "structuredContent": _IDENTITY,
        "isError": False,
        "resultType": "complete",
        "_meta": _SERVER_INFO,
    }


async def _read_body(receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _respond(send, status: int, body: bytes) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    request = json.loads(await _read_body(receive))
    request_id = json.dumps(request.get("id")).encode()
    method = request.get("method")
    if method == "tools/list":
        await _respond(send, 200, b'{"jsonrpc":"2.0","id":' + request_id + b',"result":' + _TOOLS_LIST + b"}")
    elif method == "tools/call" and request.get("params", {}).get("name") == "whoami":
        response = {"jsonrpc": "2.0", "id": request.get("id"), "result": _whoami()}
        await _respond(send, 200, json.dumps(response, separators=(",", ":")).encode())
    else:
        error = {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32601, "message": "Method not found"}}
        await _respond(send, 404, json.dumps(error).encode())
