"""Slow and stuck clients cannot exhaust a worker, and the server's timeouts close them.

One server process with one worker is the worst case: every misbehaving
connection lands on the worker that must also serve the well-behaved client.
The misbehaving clients are the classic ones: connected but silent, request
headers trickled a byte at a time (slowloris), a body announced but sent
slowly or never finished, and an idle keep-alive connection after a response.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

import httpx
import pytest

from tests.app.resilience import rawhttp
from tests.app.resilience.wire import Expect, check_answer, headers_for, post, rpc
from tests.app.serving import ServerProcess, running_server

# uvicorn's keep-alive timeout (python -m app keeps uvicorn's default of 5 s).
KEEP_ALIVE_S = 5
# MCP_READ_TIMEOUT_SECONDS: the time a client gets to send a request head, and then its body (default 15 s);
# shortened here so the test is quick.
READ_TIMEOUT_S = 2
# The margin a timeout may overrun by before the test calls it missing (scheduling on a busy 2-core box).
MARGIN_S = 5


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"MCP_HANDLE_KEYS": "slow:slow-secret-0123456789abcdef", "MCP_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT_S)}
    with running_server(env=env, workers=1) as s:
        yield s
        assert s.process.poll() is None, s.output()[-3000:]


class Trickler:
    """Background thread feeding each socket one byte at a time, every `interval` seconds, until stopped."""

    def __init__(self, feeds: list[tuple[socket.socket, bytes]], interval: float) -> None:
        self.feeds = feeds
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        position = 0
        while not self.stop.wait(self.interval) and position < 10_000:
            for sock, data in self.feeds:
                if position < len(data):
                    with contextlib.suppress(OSError):
                        sock.sendall(data[position : position + 1])
            position += 1

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _request_bytes(body: dict) -> tuple[bytes, bytes]:
    raw = json.dumps(body).encode()
    return rawhttp.request_head("http://127.0.0.1:1/mcp", headers_for(body), len(raw)), raw


def test_a_normal_client_is_served_while_many_connections_stall(server: ServerProcess) -> None:
    head, body = _request_bytes(rpc("tools/list"))
    sockets: list[socket.socket] = []
    try:
        silent = [rawhttp.connect(server.url) for _ in range(40)]
        slowloris = [rawhttp.connect(server.url) for _ in range(30)]
        slow_body = [rawhttp.connect(server.url) for _ in range(30)]
        sockets = silent + slowloris + slow_body
        for sock in slow_body:
            sock.sendall(head + body[:5])
        feeds = [(s, head) for s in slowloris] + [(s, body[5:]) for s in slow_body]
        with Trickler(feeds, interval=0.5), httpx.Client(timeout=10) as client:
            started = time.monotonic()
            for i in range(60):
                check_answer(post(client, server.mcp_url, rpc("tools/list", id=i)), Expect.ok("normal client"), i)
                body_i = rpc("tools/call", {"name": "whoami", "arguments": {}}, id=f"w{i}")
                check_answer(post(client, server.mcp_url, body_i), Expect.ok("normal client whoami"), f"w{i}")
            print(f"\n120 requests served in {time.monotonic() - started:.2f} s beside 100 stalled connections")
    finally:
        for sock in sockets:
            sock.close()


def test_an_idle_keep_alive_connection_is_closed_by_the_server(server: ServerProcess) -> None:
    head, body = _request_bytes(rpc("tools/list", id="ka"))
    with rawhttp.connect(server.url) as sock:
        sock.sendall(head + body)
        status, _, answer = rawhttp.read_response(sock, timeout=10)
        assert status == 200, answer
        closed_after = rawhttp.seconds_until_closed(sock, within=KEEP_ALIVE_S + MARGIN_S)
    assert closed_after is not None, f"idle keep-alive connection still open after {KEEP_ALIVE_S + MARGIN_S} s"
    print(f"\nidle keep-alive connection closed after {closed_after:.1f} s")


def test_a_connection_that_never_sends_a_request_is_closed(server: ServerProcess) -> None:
    with rawhttp.connect(server.url) as sock:
        closed_after = rawhttp.seconds_until_closed(sock, within=READ_TIMEOUT_S + MARGIN_S)
    assert closed_after is not None, (
        f"a connection that sent nothing is still open after {READ_TIMEOUT_S + MARGIN_S} s: each one holds a "
        "socket and a file descriptor of the worker for as long as the client likes"
    )
    print(f"\nsilent connection closed after {closed_after:.1f} s")


@pytest.mark.parametrize("after_a_response", [False, True], ids=["new-connection", "kept-alive-connection"])
def test_request_headers_trickled_slowly_are_cut_off(server: ServerProcess, after_a_response: bool) -> None:
    """Slowloris: one byte of request head every 0.5 s keeps the keep-alive timer from ever firing."""
    head, body = _request_bytes(rpc("tools/list", id="first"))
    with rawhttp.connect(server.url) as sock:
        if after_a_response:
            sock.sendall(head + body)
            assert rawhttp.read_response(sock, timeout=10)[0] == 200
        with Trickler([(sock, head)], interval=0.5):
            closed_after = rawhttp.seconds_until_closed(sock, within=READ_TIMEOUT_S + MARGIN_S)
    assert closed_after is not None, (
        f"a client sending its request head one byte per 0.5 s is still connected after {READ_TIMEOUT_S + MARGIN_S} s"
    )
    print(f"\nslowloris closed after {closed_after:.1f} s")


def test_a_request_body_that_stops_arriving_is_timed_out(server: ServerProcess) -> None:
    head, body = _request_bytes(rpc("tools/list", id="stalled"))
    with rawhttp.connect(server.url) as sock:
        sock.sendall(head + body[: len(body) // 2])
        started = time.monotonic()
        try:
            status, _, answer = rawhttp.read_response(sock, timeout=READ_TIMEOUT_S + MARGIN_S)
        except (TimeoutError, ConnectionError) as exc:
            closed = isinstance(exc, ConnectionError)
            assert closed, f"a request whose body stopped arriving got no answer and was not closed: {exc}"
            status, answer = None, b""
    if status is not None:
        assert status == 408, (status, answer)
        assert json.loads(answer)["error"]["code"] == -32600, answer
    print(f"\nstalled body: {'closed' if status is None else status} after {time.monotonic() - started:.1f} s")
