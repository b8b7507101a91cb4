"""A deadline on receiving each request (head and body), which uvicorn itself does not have.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``, 5 s) but
waits for ever on a connection that never sends a request, that trickles its
head a byte at a time (slowloris), or that announces a body and stops: each
holds a socket, a file descriptor and (for a body) a task of the worker.

`RequestTimeoutProtocol` is uvicorn's own httptools protocol plus one timer
per request, armed when the connection opens or a new request begins and
disarmed when the request has been received whole. If it fires first:

- the head was incomplete -> the connection is closed (there is no request
  to answer);
- the body was incomplete -> ``408 Request Timeout`` with a JSON-RPC error
  body, the application's ``receive()`` sees a disconnect, and the connection
  is closed.

Doing this in the protocol rather than in the ASGI app costs one timer per
request instead of an ``asyncio.timeout`` scope around every body read (a
fifth of the transport's own CPU time). It applies when served by
``python -m app``; an ASGI server of your own brings its own timeouts.

``MCP_READ_TIMEOUT_SECONDS`` (default 15) is the deadline. App Service's
front end buffers and forwards requests, so a legitimate client is far from it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "MCP_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_S = 15.0


def read_timeout_seconds(environ: Mapping[str, str] = os.environ) -> float:
    raw = environ.get(READ_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_READ_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{READ_TIMEOUT_ENV}={raw!r} is not a number; allowed: 0.1..3600 seconds") from None
    if not 0.1 <= value <= 3600:
        raise SystemExit(f"{READ_TIMEOUT_ENV}={value} is out of range; allowed: 0.1..3600 seconds")
    return value


def _timeout_response(timeout_s: float, served_by: str) -> bytes:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "error": {"code": -32600, "message": f"Request Timeout: the request did not arrive within {timeout_s:g} s"},
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-served-by: {served_by}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1", "replace") + body


class RequestTimeoutProtocol(HttpToolsProtocol):
    timeout_s = read_timeout_seconds()
    _timeout_reply = _timeout_response(timeout_s, os.environ.get("WEBSITE_INSTANCE_ID", "").strip() or "local")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        receiving_body = cycle is not None and cycle.more_body and not cycle.response_complete
        if receiving_body and not cycle.response_started:
            self.transport.write(self._timeout_reply)
        if cycle is not None and receiving_body:
            cycle.disconnected = True  # the application's receive() now returns http.disconnect
            cycle.message_event.set()
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
