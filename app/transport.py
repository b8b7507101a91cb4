"""The lean stateless Streamable HTTP transport for POST /mcp, as a raw ASGI callable.

Why not the SDK's transport: its per-request path (Starlette request objects,
pydantic envelopes, a task group per exchange) costs about ten times the CPU
of a bare ASGI app, and a stateless server gains nothing from it. This
transport does only what the HTTP layer of the spec asks, then hands one
parsed message to `app.protocol.Dispatcher`:

1. ``Origin`` present and not allowed -> 403 (DNS-rebinding protection).
2. Any method but POST -> 405 with ``Allow: POST`` (there is no GET stream
   and no session to DELETE).
3. ``Accept`` present without ``application/json`` (or a wildcard) -> 406;
   ``Content-Type`` present and not ``application/json`` -> 415.
4. Body over ``MAX_BODY_BYTES`` (1 MiB) -> 413, decided from
   ``Content-Length`` before reading and by counting while reading (chunked
   bodies), so an oversized body is never held in memory whole.
   (A request that does not arrive within ``MCP_READ_TIMEOUT_SECONDS`` is cut
   off before it gets here, by `app.http_protocol`.)
5. JSON parse, then the dispatcher; its `Reply` is written as
   ``application/json`` (a single object, never SSE: nothing here streams).

Every response carries ``X-Served-By``. Nothing is logged per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp.types import INVALID_REQUEST

from app.protocol import Exchange, MessageHandler, Reply

MAX_BODY_BYTES = 1024 * 1024

_ROUTING = {
    MCP_PROTOCOL_VERSION_HEADER.encode(): MCP_PROTOCOL_VERSION_HEADER,
    MCP_METHOD_HEADER.encode(): MCP_METHOD_HEADER,
    MCP_NAME_HEADER.encode(): MCP_NAME_HEADER,
}
_JSON = b"application/json"


def _error_body(code: int, message: str) -> bytes:
    # No id: none was read (see app.protocol on why an unknown id is omitted, not null).
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}}).encode()


class McpTransport:
    """ASGI app serving MCP on one endpoint; ``handler`` decides each message (see `app.protocol`)."""

    def __init__(
        self,
        handler: MessageHandler,
        origin_allowed: Callable[[str], bool],
        served_by: str,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.handler = handler
        self._origin_allowed = origin_allowed
        self._served_by = served_by.encode("latin-1", "replace")
        self._max_body = max_body_bytes
        # Built once: a json.dumps per request for an answer that is almost never sent cost 4% of a tools/call.
        self._too_large = _error_body(INVALID_REQUEST, f"Payload Too Large: the body limit is {max_body_bytes} bytes")

    async def __call__(self, scope, receive, send) -> None:
        routing: dict[str, str] = {}
        duplicated: set[str] = set()
        origin = accept = content_type = content_length = None
        for name, value in scope["headers"]:
            key = _ROUTING.get(name)
            if key is not None:
                if key in routing:
                    duplicated.add(key)
                # RFC 9110 5.5: optional whitespace around a field value is not part of it.
                routing[key] = value.decode("latin-1").strip(" \t")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"accept":
                accept = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value

        if origin is not None and not self._origin_allowed(origin):
            await self._send(send, 403, _error_body(INVALID_REQUEST, f"Forbidden: Origin {origin!r} is not allowed"))
            return
        if scope["method"] != "POST":
            await self._send(
                send,
                405,
                _error_body(INVALID_REQUEST, f"Method Not Allowed: {scope['method']}; this endpoint accepts POST only"),
                extra=[(b"allow", b"POST")],
            )
            return
        if accept is not None and not _accepts_json(accept):
            await self._send(
                send, 406, _error_body(INVALID_REQUEST, "Not Acceptable: Accept must include application/json")
            )
            return
        if content_type is not None and content_type.split(b";", 1)[0].strip().lower() != _JSON:
            await self._send(
                send,
                415,
                _error_body(INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json"),
            )
            return
        too_large = self._too_large
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                declared = -1
            if declared > self._max_body:
                await self._send(send, 413, too_large, extra=[(b"connection", b"close")])
                return

        # A body that stops arriving is cut off by the server protocol's deadline (app.http_protocol):
        # receive() then reports a disconnect, and the client has had its 408.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                await self._send(send, 413, too_large, extra=[(b"connection", b"close")])
                return
            chunks.append(chunk)
            more = event.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)

        exchange = Exchange(headers=routing, duplicated_headers=frozenset(duplicated))
        try:
            exchange.message = json.loads(body)
        except (ValueError, RecursionError) as error:
            # ValueError covers JSONDecodeError, bad UTF-8 and huge integer literals; RecursionError deep nesting.
            exchange.parse_error = str(error) if isinstance(error, json.JSONDecodeError) else "the body is not JSON"
        reply = await self.handler(exchange)
        await self._reply(send, reply)

    async def _reply(self, send, reply: Reply) -> None:
        if reply.body is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [(b"content-length", b"0"), (b"x-served-by", self._served_by)],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self._send(send, reply.status, reply.body)

    async def _send(self, send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-served-by", self._served_by),
        ]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _accepts_json(accept: bytes) -> bool:
    for item in accept.lower().split(b","):
        media = item.split(b";", 1)[0].strip()
        if media in (_JSON, b"application/*", b"*/*"):
            return True
    return False
