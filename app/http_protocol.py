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
fifth of the transport's own CPU time). Both apply when served by
``python -m app``; an ASGI server of your own brings its own limits.

``MCP_READ_TIMEOUT_SECONDS`` (default 15) is the deadline. App Service's
front end buffers and forwards requests, so a legitimate client is far from it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import SettingsError, env_number

READ_TIMEOUT_ENV = "MCP_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_S = 15.0


def read_timeout_seconds(environ: Mapping[str, str] = os.environ) -> float:
    try:
        return env_number(environ, READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S, 0.1, 3600)
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
    timeout_s = read_timeout_seconds()
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
        # call_later + cancel per request cost about 6% of a small request's CPU; see README, Benchmark.)
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
        self._head_pending = False
        self._heads_completed += 1
        # A head that arrived whole in one read was never counted: measure what the parser collected.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        self._refuse_head = size > MAX_HEAD_BYTES
        super().on_headers_complete()

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
