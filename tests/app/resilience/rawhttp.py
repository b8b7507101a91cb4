"""Raw-socket HTTP/1.1 for the misbehaving clients the resilience tests play.

httpx cannot send half a request, stall between header bytes or hold a
connection idle on purpose, so those clients are written on plain sockets.
Every read has a timeout; nothing here can hang a test.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(
    url: str, headers: dict[str, str], content_length: int | None, method: str = "POST", version: str = "1.1"
) -> bytes:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/{version}", f"Host: {parts.hostname}:{parts.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Read one response with a Content-Length body; raise TimeoutError past `timeout` seconds."""
    return read_responses(sock, 1, timeout)[0]


def read_responses(sock: socket.socket, count: int, timeout: float) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` consecutive responses (pipelined ones included), each with a Content-Length body."""
    deadline = time.monotonic() + timeout
    data = b""
    responses = []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            data += _recv(sock, deadline)
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            data += _recv(sock, deadline)
        responses.append((int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    return responses


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closing)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no complete response in time")
    sock.settimeout(remaining)
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("server closed the connection")
    return chunk


def seconds_until_closed(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closes `sock` (EOF or reset), or None if still open after `within`.

    Bytes the server sends before closing (e.g. a 408 response) are read and ignored.
    """
    start = time.monotonic()
    deadline = start + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if not chunk:
            return time.monotonic() - start
