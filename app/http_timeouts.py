"""A time limit on receiving a request head, which uvicorn itself does not have.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``, 5 s) but
waits for ever on a connection that never sends a request, or that trickles
its head a byte at a time (slowloris): each holds a socket and a file
descriptor of the worker. `HeadTimeoutProtocol` is uvicorn's own httptools
protocol plus one timer: armed when a connection opens and when a new request
begins, disarmed when the head is complete; if it fires, the connection is
closed. The body has its own limit in `app.transport` (HTTP 408).

``MCP_READ_TIMEOUT_SECONDS`` (default 15) sets both. App Service's front end
buffers and forwards requests, so a legitimate client never comes close.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "MCP_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_S = 15.0


def read_timeout_seconds(environ=os.environ) -> float:
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


class HeadTimeoutProtocol(HttpToolsProtocol):
    head_timeout_s = read_timeout_seconds()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)
