"""The lean stateless Streamable HTTP transport for POST /mcp: its decisions, and a raw ASGI callable.

Why not the SDK's transport: its per-request path (Starlette request objects,
pydantic envelopes, a task group per exchange) costs several times the CPU
of a bare ASGI app (bench/RESULTS.md), and a stateless server gains nothing
from it. This transport does only what the HTTP layer of the spec asks,
then hands one parsed message to `app.protocol.Dispatcher`:

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
   ``application/json`` (a single object), unless the handler streamed
   notifications about the request, which the dispatcher then wrote as SSE
   to the exchange's sink, the result last (see `app.kernel`). A sink is
   offered only to a client whose ``Accept`` lists ``text/event-stream``.

Every response carries ``X-Served-By``. Nothing is logged per request.

``python -m app`` serves POST /mcp with these same steps straight from the
HTTP parser (`app.http_protocol.McpHttpProtocol`), skipping the ASGI cycle;
this ASGI callable serves what that path leaves to ASGI, and the whole
endpoint under any other ASGI server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp.types import INVALID_REQUEST

from app.protocol import Exchange, MessageHandler
from app.sse import EventSink

MAX_BODY_BYTES = 1024 * 1024

_ROUTING = {
    MCP_PROTOCOL_VERSION_HEADER.encode(): MCP_PROTOCOL_VERSION_HEADER,
    MCP_METHOD_HEADER.encode(): MCP_METHOD_HEADER,
    MCP_NAME_HEADER.encode(): MCP_NAME_HEADER,
}
_JSON = b"application/json"
_EVENT_STREAM = b"text/event-stream"
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", _EVENT_STREAM),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
)


def error_body(code: int, message: str) -> bytes:
    # No id: none was read (see app.protocol on why an unknown id is omitted, not null).
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}}).encode()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer decided from the request head alone (or from a body that grew too large)."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What the dispatcher needs from an accepted request head."""

    routing: dict[str, str]
    duplicated: frozenset[str]
    headers: list[tuple[bytes, bytes]]
    """All of the head's headers, as the server gave them (decoded only for a request that reads them)."""
    streams: bool
    """``Accept`` lists ``text/event-stream``: notifications may be streamed."""


class McpTransport:
    """ASGI app serving MCP on one endpoint; ``handler`` decides each message (see `app.protocol`).

    Its steps are public so that `app.http_protocol` can serve POST /mcp
    straight from the HTTP parser with the same decisions: `read_head`, then
    (the body read with `max_body`, `too_large` past it) `exchange`, then
    ``handler``, then `response_headers`.
    """

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
        self.max_body = max_body_bytes
        # Built once: a json.dumps per request for an answer that is almost never sent showed in every tools/call.
        self.too_large = Refusal(
            413,
            error_body(INVALID_REQUEST, f"Payload Too Large: the body limit is {max_body_bytes} bytes"),
            ((b"connection", b"close"),),
        )

    def read_head(self, method: str, headers: list[tuple[bytes, bytes]]) -> RequestHead | Refusal:
        """Steps 1-4 of the module docstring: the routing headers, or the refusal the head alone decides."""
        routing: dict[str, str] = {}
        duplicated: set[str] = set()
        origin = accept = content_type = content_length = None
        for name, value in headers:
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
            return Refusal(403, error_body(INVALID_REQUEST, f"Forbidden: Origin {origin!r} is not allowed"))
        if method != "POST":
            return Refusal(
                405,
                error_body(INVALID_REQUEST, f"Method Not Allowed: {method}; this endpoint accepts POST only"),
                ((b"allow", b"POST"),),
            )
        if accept is not None and not _accepts_json(accept):
            return Refusal(406, error_body(INVALID_REQUEST, "Not Acceptable: Accept must include application/json"))
        if content_type is not None and content_type.split(b";", 1)[0].strip().lower() != _JSON:
            return Refusal(
                415, error_body(INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json")
            )
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                declared = -1
            if declared > self.max_body:
                return self.too_large
        return RequestHead(
            routing, frozenset(duplicated), headers, accept is not None and _EVENT_STREAM in accept.lower()
        )

    @staticmethod
    def exchange(head: RequestHead, body: bytes, sink: EventSink | None, peer: str | None = None) -> Exchange:
        """Step 5: the body parsed into an `Exchange` for the handler (a parse failure is recorded, not raised)."""
        exchange = Exchange(
            headers=head.routing, duplicated_headers=head.duplicated, raw_headers=head.headers, sink=sink, peer=peer
        )
        # orjson, not json.loads: much less CPU for the same parse (bench/RESULTS.md). It is stricter at the edges RFC 8259 leaves open, each of which is then a parse error:
        # bodies not in UTF-8, lone surrogates, NaN/Infinity, integers outside 64 bits, nesting over 1024 levels.
        try:
            exchange.message = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            exchange.parse_error = str(error)
        return exchange

    def response_headers(
        self, body: bytes | None, extra: tuple[tuple[bytes, bytes], ...] = (), length: bool = True
    ) -> list[tuple[bytes, bytes]]:
        """Headers of an answer with ``body`` (None: no body, as for a notification's 202, or a stream with
        ``length=False``, whose ``extra`` then names its type)."""
        if body is None:
            sized = [(b"content-length", b"0")] if length else []
            return [*sized, (b"x-served-by", self._served_by), *extra]
        return [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            (b"x-served-by", self._served_by),
            *extra,
        ]

    async def __call__(self, scope, receive, send) -> None:
        head = self.read_head(scope["method"], scope["headers"])
        if isinstance(head, Refusal):
            await self._send(send, head.status, head.body, head.headers)
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
            if size > self.max_body:
                await self._send(send, 413, self.too_large.body, self.too_large.headers)
                return
            chunks.append(chunk)
            more = event.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)

        sink = _AsgiEventSink(send, self.response_headers(None, SSE_HEADERS, length=False)) if head.streams else None
        client = scope.get("client")
        reply = await self.handler(self.exchange(head, body, sink, client[0] if client else None))
        if not reply.streamed:
            await self._send(send, reply.status, reply.body, reply.headers)

    async def _send(self, send, status: int, body: bytes | None, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        await send({"type": "http.response.start", "status": status, "headers": self.response_headers(body, extra)})
        await send({"type": "http.response.body", "body": body or b""})


class _AsgiEventSink(EventSink):
    """SSE through ASGI ``send``; the server frames the body (chunked)."""

    def __init__(self, send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._headers = headers

    async def open(self) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})

    async def write(self, frame: bytes) -> None:
        await self._send({"type": "http.response.body", "body": frame, "more_body": True})

    async def close(self, frame: bytes) -> None:
        await self._send({"type": "http.response.body", "body": frame, "more_body": False})


def _accepts_json(accept: bytes) -> bool:
    for item in accept.lower().split(b","):
        media = item.split(b";", 1)[0].strip()
        if media in (_JSON, b"application/*", b"*/*"):
            return True
    return False
