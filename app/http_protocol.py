"""uvicorn's HTTP protocol plus the two limits it lacks: a request deadline and a head size.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``, 5 s) but
waits for ever on a connection that never sends a request, that trickles its
head a byte at a time (slowloris), or that announces a body and stops: each
holds a socket, a file descriptor and (for a body) a task of the worker. And
httptools buffers a request head of any size (a 16 MiB header line included).

Head size: a request head over ``MAX_HEAD_BYTES`` (64 KiB, the order of
common front ends' limits) gets ``431 Request Header Fields Too Large`` and
the connection is closed. A head still arriving is measured by the raw bytes
read while it is incomplete (so a huge one is refused before it is buffered
whole); a head that completes is measured by what the parser collected (URL
and header fields), which also catches one that arrived in a single read.

Deadline: each request must be received whole within the deadline, counted
from when the connection opens or the request begins. One timer per
connection checks the request in progress (cheaper than a timer per request).
If the deadline passes first:

- the head was incomplete -> the connection is closed (there is no request
  to answer);
- the body was incomplete -> ``408 Request Timeout`` with a JSON-RPC error
  body, the application's ``receive()`` sees a disconnect, and the connection
  is closed.

`LimitedHttpProtocol` is uvicorn's own httptools protocol with both. Doing
the deadline in the protocol rather than in the ASGI app costs a timestamp per
request instead of an ``asyncio.timeout`` scope around every body read (a
large part of the transport's own CPU time). Both apply when served by
``python -m app``; an ASGI server of your own brings its own limits.

``MCP_READ_TIMEOUT_SECONDS`` (default 15) is the deadline. App Service's
front end buffers and forwards requests, so a legitimate client is far from it.

`McpHttpProtocol` (what ``python -m app`` runs) adds one more thing: it
serves ``POST /mcp`` straight from the parser's callbacks, without an ASGI
cycle. The ASGI machinery per request (scope dict, request-response cycle
object, ``receive``/``send`` coroutines and message dicts, header checks in
``send``, the proxy-headers middleware) cost more CPU under load than all of
the transport's own work, and a stateless JSON exchange needs
none of it: the body is collected as it is parsed, the message is decided by
the same `app.transport.McpTransport` steps (head checks, parse, dispatcher,
response headers), and the reply leaves in one write (a streamed reply, one
HTTP/1.1 chunk per SSE event; a client that goes away cancels the handler,
as on the SDK's transport). Anything else (another
path, another method, a query string, ``Expect: 100-continue``, HTTP/1.0, an
upgrade, a request pipelined behind one still being answered) takes uvicorn's
ASGI path, where the app's `Router` gives ``/mcp`` to the same transport, so
both paths answer alike (tests/app/test_http_protocol.py holds them to it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from mcp.types import INTERNAL_ERROR
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.settings import SettingsError, read_timeout_seconds
from app.sse import EventSink
from app.transport import SSE_HEADERS, McpTransport, Refusal, RequestHead, error_body

logger = logging.getLogger(__name__)


def _read_timeout_s() -> float:
    try:
        return read_timeout_seconds(os.environ)
    except SettingsError as error:  # read at import, before any handler: stop start-up with the message
        raise SystemExit(str(error)) from None


def _refusal(status: str, message: str, served_by: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "error": {"code": -32600, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-served-by: {served_by}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1", "replace") + body


MAX_HEAD_BYTES = 64 * 1024
_SERVED_BY = os.environ.get("WEBSITE_INSTANCE_ID", "").strip() or "local"


class LimitedHttpProtocol(HttpToolsProtocol):
    timeout_s = _read_timeout_s()
    _timeout_reply = _refusal(
        "408 Request Timeout", f"Request Timeout: the request did not arrive within {timeout_s:g} s", _SERVED_BY
    )
    _head_too_large_reply = _refusal(
        "431 Request Header Fields Too Large",
        f"Request Header Fields Too Large: the request head limit is {MAX_HEAD_BYTES} bytes",
        _SERVED_BY,
    )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._started: float | None = None
        self._head_pending = True
        self._heads_completed = 0
        self._head_bytes = 0
        self._refuse_head = False
        self._arm()

    def data_received(self, data: bytes) -> None:
        pending_before, heads_before = self._head_pending, self._heads_completed
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._refuse_head:
            self._refuse(self._head_too_large_reply)
            return
        # A head still incomplete after this read: count the read if it is all head (a head was pending before
        # it and none completed within it), so a huge head is refused before it is buffered whole.
        if pending_before and self._heads_completed == heads_before:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(self._head_too_large_reply)

    def _refuse(self, reply: bytes) -> None:
        """Answer ``reply`` unless a response has begun, stop the application's request, close."""
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(reply)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's receive() now returns http.disconnect
            cycle.message_event.set()
        self.transport.close()

    def _arm(self) -> None:
        # One timer per connection, not one per request: a request only stamps when it began, and the timer,
        # re-armed for the time left whenever it fires early, judges the request then in progress. (A
        # call_later + cancel per request showed in a small request's CPU; see README, Benchmark.)
        self._started = self.loop.time()
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_s, self._timed_out)

    def _disarm(self) -> None:
        self._started = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._started is None:
            return  # no request in progress: the next one arms again
        left = self._started + self.timeout_s - self.loop.time()
        if left > 0:
            self._deadline = self.loop.call_later(left, self._timed_out)
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            self._refuse(self._timeout_reply)  # the body stopped arriving
        else:
            self.transport.close()  # the head never completed: there is no request to answer

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._head_complete()
        super().on_headers_complete()

    def _head_complete(self) -> None:
        self._head_pending = False
        self._heads_completed += 1
        # A head that arrived whole in one read was never counted: measure what the parser collected.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        self._refuse_head = size > MAX_HEAD_BYTES

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_pending = True
        self._head_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._started = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


class _NoWaiter:
    """Stands in for a cycle's ``message_event``: uvicorn sets it to wake a waiting ``receive()``; none waits here."""

    def set(self) -> None:
        pass


_NO_WAITER = _NoWaiter()


class _CancelOnDisconnect:
    """A served message's ``message_event``: uvicorn sets it when the client goes away, which cancels the handler
    (as the SDK's transport does), so a long tool stops working for nobody."""

    __slots__ = ("cycle", "task")

    def __init__(self, cycle: _DirectExchange, task: asyncio.Task) -> None:
        self.cycle = cycle
        self.task = task

    def set(self) -> None:
        if self.cycle.disconnected and not self.task.done():
            self.task.cancel()


_INTERNAL_ERROR = Refusal(500, error_body(INTERNAL_ERROR, "Internal error"), ((b"connection", b"close"),))


class _DirectExchange:
    """One POST /mcp served without ASGI; the attributes uvicorn reads on a request cycle, plus the body."""

    __slots__ = (
        "chunks",
        "disconnected",
        "head",
        "keep_alive",
        "message_event",
        "more_body",
        "response_complete",
        "response_started",
        "size",
    )

    def __init__(self, head: RequestHead | None, keep_alive: bool) -> None:
        self.head = head
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = keep_alive
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.message_event: _NoWaiter | _CancelOnDisconnect = _NO_WAITER


def _mcp_endpoint(app: object) -> tuple[bytes, McpTransport] | None:
    """The served app's MCP path and transport (`app.main.Router`), found through uvicorn's wrappers, which
    keep the application they wrap as ``.app``; None for any other application."""
    for _ in range(8):
        transport, path = getattr(app, "mcp", None), getattr(app, "mcp_path", None)
        if isinstance(transport, McpTransport) and isinstance(path, str):
            return path.encode(), transport
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class McpHttpProtocol(LimitedHttpProtocol):
    """`LimitedHttpProtocol` serving ``POST /mcp`` straight from the parser (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's concurrency limit answers 503 from its ASGI path; with one set, leave every request to it.
        endpoint = _mcp_endpoint(self.app) if self.limit_concurrency is None else None
        self._mcp_path, self._mcp = endpoint if endpoint is not None else (None, None)

    def on_headers_complete(self) -> None:
        mcp = self._mcp
        cycle = self.cycle
        if (
            mcp is None
            or self.url != self._mcp_path
            or (cycle is not None and not cycle.response_complete)
            or self.expect_100_continue
            or self.parser.get_method() != b"POST"
            or self.parser.get_http_version() != "1.1"
            or self.parser.should_upgrade()
        ):
            super().on_headers_complete()
            return
        self._head_complete()
        head = mcp.read_head("POST", self.headers)
        if isinstance(head, Refusal):
            # Answered now; the body, if any, is skipped as it arrives (as when the ASGI app answers unread).
            self.cycle = _DirectExchange(None, self.parser.should_keep_alive())
            self._answer(self.cycle, head.status, head.body, head.headers)
            return
        self.cycle = _DirectExchange(head, self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is not _DirectExchange:
            super().on_body(body)
            return
        if cycle.response_complete:
            return
        cycle.size += len(body)
        mcp: McpTransport = self._mcp  # type: ignore[assignment]
        if cycle.size > mcp.max_body:
            cycle.chunks.clear()
            self._answer(cycle, mcp.too_large.status, mcp.too_large.body, mcp.too_large.headers)
            return
        cycle.chunks.append(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if type(cycle) is _DirectExchange and not cycle.response_complete:
            chunks = cycle.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            # A task per message, as uvicorn makes one per ASGI cycle: the server's graceful shutdown waits for
            # it, and a slow tool (compute_primes) does not hold up other connections.
            task = self.loop.create_task(self._serve(cycle, body))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            cycle.message_event = _CancelOnDisconnect(cycle, task)

    async def _serve(self, cycle: _DirectExchange, body: bytes) -> None:
        mcp: McpTransport = self._mcp  # type: ignore[assignment]
        head: RequestHead = cycle.head  # type: ignore[assignment]
        sink = _DirectEventSink(self, cycle) if head.streams else None
        try:
            reply = await mcp.handler(mcp.exchange(head, body, sink, self.client[0] if self.client else None))
        except Exception:  # the dispatcher answers every failure itself; this is a middleware's bug
            logger.exception("internal error serving POST /mcp")
            if not cycle.disconnected and not cycle.response_started:
                self._answer(cycle, _INTERNAL_ERROR.status, _INTERNAL_ERROR.body, _INTERNAL_ERROR.headers)
            return
        finally:
            # The canceller and the cycle refer to each other: left so, every request's exchange (head, body,
            # task) would wait for the garbage collector instead of going with its last reference, leaving
            # more objects per request for each young-generation collection to walk.
            cycle.message_event = _NO_WAITER
        if not cycle.disconnected and not reply.streamed:  # the client left, or the deadline already answered it
            self._answer(cycle, reply.status, reply.body, reply.headers)

    def _answer(
        self, cycle: _DirectExchange, status: int, body: bytes | None, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        """Write the whole response in one write, then hand the connection back to uvicorn (keep-alive or close)."""
        closes = any(name == b"connection" for name, _ in extra)
        if closes:
            cycle.keep_alive = False
        headers = [*self.server_state.default_headers, *self._mcp.response_headers(body, extra)]  # type: ignore[union-attr]
        if not cycle.keep_alive and not closes:
            headers.append((b"connection", b"close"))
        cycle.response_started = True
        self.transport.write(_head(status, headers) + (body or b""))
        self._complete(cycle)

    def _complete(self, cycle: _DirectExchange) -> None:
        """The response is written whole: hand the connection back to uvicorn (keep-alive or close)."""
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _open_stream(self, cycle: _DirectExchange) -> None:
        headers = [
            *self.server_state.default_headers,
            *self._mcp.response_headers(None, SSE_HEADERS, length=False),  # type: ignore[union-attr]
            (b"transfer-encoding", b"chunked"),
        ]
        if not cycle.keep_alive:
            headers.append((b"connection", b"close"))
        cycle.response_started = True
        self.transport.write(_head(200, headers))


def _head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    parts = [STATUS_LINE[status]]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _DirectEventSink(EventSink):
    """SSE written straight to the connection, one HTTP/1.1 chunk per frame."""

    def __init__(self, protocol: McpHttpProtocol, cycle: _DirectExchange) -> None:
        self._protocol = protocol
        self._cycle = cycle

    async def open(self) -> None:
        if not self._cycle.disconnected:
            self._protocol._open_stream(self._cycle)

    async def write(self, frame: bytes) -> None:
        if not self._cycle.disconnected:
            self._protocol.transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))

    async def close(self, frame: bytes) -> None:
        if not self._cycle.disconnected:
            self._protocol.transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(frame), frame))
            self._protocol._complete(self._cycle)
