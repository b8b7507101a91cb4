"""The HTTP layer of POST /mcp: origin, methods, media types, request head limit, deadlines, X-Served-By.

(The 1 MiB body limit: its refusal on both serving paths in test_http_protocol.py, its exact boundary in
test_fuzz.py.)
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest

from tests.app.conftest import call_modern, modern_headers, modern_request, rpc
from tests.app.resilience import rawhttp
from tests.app.serving import running_server


def test_requests_without_origin_are_served(http):
    assert call_modern(http, "tools/list").status_code == 200


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1", "http://[::1]:8080"])
def test_loopback_origins_are_allowed_by_default(http, origin):
    response = rpc(http, modern_request("tools/list"), {**modern_headers("tools/list"), "Origin": origin})
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example.com", "http://localhost.evil.com", "null"])
def test_foreign_origin_is_403(http, origin):
    response = rpc(http, modern_request("tools/list"), {**modern_headers("tools/list"), "Origin": origin})
    assert response.status_code == 403
    assert origin in response.json()["error"]["message"]


def test_allow_list_from_environment_replaces_the_loopback_default():
    with running_server(env={"MCP_ALLOWED_ORIGINS": "https://app.example.com", "MCP_HANDLE_KEYS": None}) as srv:
        import httpx

        with httpx.Client(base_url=srv.url) as client:
            ok = rpc(
                client,
                modern_request("tools/list"),
                {**modern_headers("tools/list"), "Origin": "https://app.example.com"},
            )
            local = rpc(
                client, modern_request("tools/list"), {**modern_headers("tools/list"), "Origin": "http://localhost"}
            )
        assert (ok.status_code, local.status_code) == (200, 403)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_other_methods_are_405_with_allow_post(http, method):
    response = http.request(method, "/mcp", headers=modern_headers("tools/list"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_accept_without_json_is_406(http):
    response = rpc(http, modern_request("tools/list"), {**modern_headers("tools/list"), "Accept": "text/event-stream"})
    assert response.status_code == 406


def test_non_json_content_type_is_415(http):
    response = rpc(http, modern_request("tools/list"), {**modern_headers("tools/list"), "Content-Type": "text/plain"})
    assert response.status_code == 415


def test_every_response_names_the_serving_instance(http):
    for response in (
        call_modern(http, "tools/list"),
        rpc(http, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"MCP-Protocol-Version": "2025-11-25"}),
        http.get("/mcp"),
        http.get("/health"),
        http.get("/"),
        http.get("/no-such-page"),
    ):
        assert response.headers["x-served-by"] == "instance-under-test", response.request.url


def test_a_body_that_stops_arriving_is_408():
    with running_server(env={"MCP_READ_TIMEOUT_SECONDS": "0.5"}) as srv:
        address = urlparse(srv.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"did not arrive within 0.5 s" in reply
    assert b"x-served-by: local" in reply


def _head_with_padding(pad: int) -> bytes:
    body = json.dumps(modern_request("tools/list")).encode()
    headers = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/list").items())
    return (
        f"POST /mcp HTTP/1.1\r\nHost: localhost\r\n{headers}X-Padding: {'a' * pad}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_an_oversized_request_head_is_431_and_never_read_whole(server):
    address = urlparse(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        try:
            sock.sendall(_head_with_padding(4 * 1024 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: the point of the limit
        reply = rawhttp.read_until_closed(sock)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:100]


@pytest.mark.parametrize("pad", [66 * 1024, 200 * 1024])
def test_a_head_just_over_the_limit_is_431_even_in_one_read(server, pad):
    address = urlparse(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(_head_with_padding(pad))
        reply = rawhttp.read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    assert b"the request head limit is 65536 bytes" in reply


def test_a_large_but_allowed_request_head_is_served(server):
    address = urlparse(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(_head_with_padding(48 * 1024))
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]


def test_a_large_body_sent_with_its_head_in_one_write_is_not_mistaken_for_a_large_head(server):
    # head and a 70 KB body in one write arrive in one read on loopback: only head bytes count against 64 KiB
    body = json.dumps(modern_request("tools/call", {"name": "echo", "arguments": {"message": "A" * 70_000}}))
    headers = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/call", "echo").items())
    request = f"POST /mcp HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {len(body)}\r\n\r\n{body}"
    address = urlparse(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        for _ in range(3):  # on a kept-alive connection too
            sock.sendall(request.encode())
            reply = sock.recv(65536)
            while b"\r\n\r\n" not in reply:
                reply += sock.recv(65536)
            head, _, rest = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(rest) < length:
                rest += sock.recv(65536)


def test_a_connection_that_sends_no_request_head_is_closed():
    with running_server(env={"MCP_READ_TIMEOUT_SECONDS": "0.5"}) as srv:
        address = urlparse(srv.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: loc")  # and then nothing
            assert sock.recv(65536) == b""  # closed by the server, long before the socket's own 10 s


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe",
        b"[" * 100_000,
        b"1" * 5000,
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":',
    ],
    ids=["empty", "not-utf8", "deep-nesting", "huge-int", "truncated"],
)
def test_garbage_bodies_get_a_parse_error_never_a_500(http, content):
    response = rpc(http, None, modern_headers("tools/list"), content=content)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in (-32700, -32600)
