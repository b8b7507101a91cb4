"""`McpHttpProtocol`: POST /mcp served straight from the HTTP parser, answering exactly as the ASGI path does.

``python -m app`` serves with `McpHttpProtocol`; plain ``uvicorn app.main:app``
serves the same application through ASGI only. Every answer the direct path
gives is compared with the ASGI path's; the requests the direct path must
leave to ASGI (pipelined, ``Expect: 100-continue``, HTTP/1.0, another path)
are shown to be answered correctly. The body limit's refusal is tested here, on
both paths (its exact boundary: test_fuzz.py); deadline and head-size limits:
test_resilience_slow_clients.py and test_transport.py.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.http_protocol import McpHttpProtocol
from app.main import create_app
from tests.app.conftest import HANDLE_KEYS, META, modern_headers, modern_request
from tests.app.resilience import rawhttp
from tests.app.serving import ServerProcess, running_server

ENV = {"MCP_HANDLE_KEYS": HANDLE_KEYS, "WEBSITE_INSTANCE_ID": "instance-under-test"}
IN_PROCESS = "http://127.0.0.1:8000"  # the address the recording transport reports
COMPARED_HEADERS = ("content-type", "content-length", "x-served-by", "allow", "connection")


@pytest.fixture(scope="module")
def direct() -> Iterator[ServerProcess]:
    with running_server(env=ENV) as srv:
        yield srv


@pytest.fixture(scope="module")
def asgi() -> Iterator[ServerProcess]:
    """The same application under plain uvicorn: no McpHttpProtocol, so /mcp goes through ASGI and the Router."""
    with running_server(env=ENV, server=["-m", "uvicorn", "app.main:app", "--http", "httptools"]) as srv:
        yield srv


def _post(srv: ServerProcess, body: bytes, headers: dict[str, str]) -> bytes:
    return rawhttp.request_head(srv.mcp_url, headers, len(body)) + body


def _modern(method: str, params: dict | None = None, name: str | None = None, **changes) -> tuple:
    headers = {**modern_headers(method, name), **changes.pop("headers", {})}
    body = changes.pop("body", None)
    return "POST", body if body is not None else json.dumps(modern_request(method, params)).encode(), headers


CASES = {
    "tools/list": _modern("tools/list"),
    "tools/call echo": _modern("tools/call", {"name": "echo", "arguments": {"message": "é ✓"}}, "echo"),
    "tool error (isError)": _modern(
        "tools/call", {"name": "compute_primes", "arguments": {"limit": 1}}, "compute_primes"
    ),
    "string id": (
        "POST",
        json.dumps({**modern_request("tools/list"), "id": "req-7"}).encode(),
        modern_headers("tools/list"),
    ),
    "resource not found": _modern("resources/read", {"uri": "fact://nope"}, "fact://nope"),
    "header mismatch -32020": _modern("tools/list", headers={"Mcp-Method": "tools/call"}),
    "unsupported version -32022": _modern("tools/list", headers={"MCP-Protocol-Version": "2099-01-01"}),
    "method not found": _modern("nope/nope"),
    "parse error": _modern("tools/list", body=b'{"jsonrpc":'),
    "batch": _modern("tools/list", body=b"[]"),
    "notification 202": (
        "POST",
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {"_meta": META}}).encode(),
        modern_headers("notifications/initialized"),
    ),
    "legacy initialize": (
        "POST",
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
            }
        ).encode(),
        {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    ),
    "foreign origin 403": _modern("tools/list", headers={"Origin": "http://evil.example.com"}),
    "GET 405": ("GET", b"", modern_headers("tools/list")),
    "Accept 406": _modern("tools/list", headers={"Accept": "text/event-stream"}),
    "Content-Type 415": _modern("tools/list", headers={"Content-Type": "text/plain"}),
    "chunked body": (
        "POST",
        [b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":', json.dumps({"_meta": META}).encode(), b"}"],
        modern_headers("tools/list"),
    ),
    "Connection: close": _modern("tools/list", headers={"Connection": "close"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_direct_path_answers_exactly_as_the_asgi_path(direct: ServerProcess, asgi: ServerProcess, case: str):
    method, body, headers = CASES[case]
    answers = []
    for srv in (direct, asgi):
        content = iter(body) if isinstance(body, list) else body  # a list is sent chunked, one chunk per item
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            response = client.request(method, "/mcp", content=content, headers=headers)
        answers.append(
            (
                response.status_code,
                response.content,
                {name: response.headers.get(name) for name in COMPARED_HEADERS},
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][2]["x-served-by"] == "instance-under-test"


def test_a_declared_oversized_body_is_413_and_closed_on_both_paths(direct: ServerProcess, asgi: ServerProcess):
    replies = []
    for srv in (direct, asgi):
        with rawhttp.connect(srv.url, timeout=30) as sock:
            sock.sendall(rawhttp.request_head(srv.mcp_url, {"Content-Type": "application/json"}, 2 * 1024 * 1024))
            replies.append(rawhttp.read_until_closed(sock))
    status_lines = [reply.split(b"\r\n", 1)[0] for reply in replies]
    assert status_lines == [b"HTTP/1.1 413 Request Entity Too Large"] * 2
    assert replies[0].split(b"\r\n\r\n", 1)[1] == replies[1].split(b"\r\n\r\n", 1)[1]


def test_a_chunked_body_that_outgrows_the_limit_is_413_and_closed_on_both_paths(
    direct: ServerProcess, asgi: ServerProcess
):
    chunk = b"x" * 65536
    replies = []
    for srv in (direct, asgi):
        with rawhttp.connect(srv.url, timeout=30) as sock:
            head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            sock.sendall(rawhttp.request_head(srv.mcp_url, head, None))
            try:
                for _ in range(20):  # 1.25 MiB, past the 1 MiB limit
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed while the rest was still being sent
            replies.append(rawhttp.read_until_closed(sock))
    assert [reply.split(b"\r\n", 1)[0] for reply in replies] == [b"HTTP/1.1 413 Request Entity Too Large"] * 2
    assert b"Payload Too Large" in replies[0]


def test_pipelined_requests_are_answered_in_order(direct: ServerProcess):
    """A slow call first, two quick ones behind it in the same write: the answers come back in request order."""
    requests = [
        _modern("tools/call", {"name": "compute_primes", "arguments": {"limit": 2_000_000}}, "compute_primes"),
        _modern("tools/call", {"name": "echo", "arguments": {"message": "second"}}, "echo"),
        _modern("tools/list"),
    ]
    with rawhttp.connect(direct.url, timeout=30) as sock:
        sock.sendall(b"".join(_post(direct, body, headers) for _, body, headers in requests))
        answers = rawhttp.read_responses(sock, 3, timeout=30)
    assert [status for status, _, _ in answers] == [200, 200, 200]
    results = [json.loads(body)["result"] for _, _, body in answers]
    assert results[0]["structuredContent"]["limit"] == 2_000_000
    assert results[1]["structuredContent"]["message"] == "second"
    assert "tools" in results[2]


def test_expect_100_continue_gets_its_interim_answer_and_then_the_result(direct: ServerProcess):
    _, body, headers = _modern("tools/list")
    with rawhttp.connect(direct.url, timeout=30) as sock:
        sock.sendall(rawhttp.request_head(direct.mcp_url, {**headers, "Expect": "100-continue"}, len(body)))
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        status, _, reply = rawhttp.read_response(sock, timeout=30)
    assert status == 200
    assert "tools" in json.loads(reply)["result"]


def test_an_http_1_0_request_is_answered_and_the_connection_closed(direct: ServerProcess):
    _, body, headers = _modern("tools/list")
    with rawhttp.connect(direct.url, timeout=30) as sock:
        sock.sendall(rawhttp.request_head(direct.mcp_url, headers, len(body), version="1.0") + body)
        reply = rawhttp.read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert "tools" in json.loads(reply.split(b"\r\n\r\n", 1)[1])["result"]


def test_keep_alive_serves_many_requests_on_one_connection(direct: ServerProcess):
    with rawhttp.connect(direct.url, timeout=30) as sock:
        for request_id in range(5):
            _, body, headers = _modern(
                "tools/call", {"name": "echo", "arguments": {"message": str(request_id)}}, "echo"
            )
            sock.sendall(_post(direct, body, headers))
            status, _, reply = rawhttp.read_response(sock, timeout=30)
            assert (status, json.loads(reply)["result"]["structuredContent"]["message"]) == (200, str(request_id))


# ------------------------------------------------------------------ in process


class _SpyApp:
    """An ASGI wrapper that records the paths it is asked to serve (kept as ``.app``, like uvicorn's wrappers)."""

    def __init__(self, app) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else ""))
        await self.app(scope, receive, send)


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connection(app) -> tuple[McpHttpProtocol, _RecordingTransport]:
    """A McpHttpProtocol on a recording transport, configured as uvicorn would (which wraps ``app``)."""
    config = Config(app=app, http=McpHttpProtocol, lifespan="off", proxy_headers=True)
    config.load()
    protocol = McpHttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _exchange(protocol: McpHttpProtocol, transport: _RecordingTransport, raw: bytes) -> bytes:
    transport.written.clear()
    protocol.data_received(raw)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if b"\r\n\r\n" in transport.written:
            break
    return bytes(transport.written)


def test_post_mcp_is_answered_without_the_asgi_app_and_everything_else_goes_through_it():
    spy = _SpyApp(create_app(environ=ENV))

    async def scenario() -> list[tuple[bytes, list[str]]]:
        protocol, transport = _connection(spy)
        _, body, headers = _modern("tools/list")
        seen = []
        for raw in (
            rawhttp.request_head(f"{IN_PROCESS}/mcp", headers, len(body)) + body,
            rawhttp.request_head(f"{IN_PROCESS}/health", {}, 0, method="GET"),
            rawhttp.request_head(f"{IN_PROCESS}/mcp?via=asgi", headers, len(body)) + body,
        ):
            answer = await _exchange(protocol, transport, raw)
            seen.append((answer.split(b"\r\n", 1)[0], list(spy.paths)))
        protocol.connection_lost(None)
        return seen

    seen = asyncio.run(scenario())
    assert seen == [
        (b"HTTP/1.1 200 OK", []),  # POST /mcp: answered, and the ASGI app never saw it
        (b"HTTP/1.1 200 OK", ["/health"]),
        (b"HTTP/1.1 200 OK", ["/health", "/mcp?via=asgi"]),  # not the exact path: left to ASGI, still served
    ]


def test_an_answered_exchange_goes_with_its_last_reference_not_the_garbage_collector():
    """No reference cycle per request: each one would leave the request's exchange for a collection to find."""
    from app.http_protocol import _DirectExchange

    async def scenario() -> list[bytes]:
        protocol, transport = _connection(create_app(environ=ENV))
        _, body, headers = _modern("tools/list")
        raw = rawhttp.request_head(f"{IN_PROCESS}/mcp", headers, len(body)) + body
        answers = [(await _exchange(protocol, transport, raw)).split(b"\r\n", 1)[0] for _ in range(5)]
        protocol.connection_lost(None)
        return answers

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        answers = asyncio.run(scenario())
        gc.collect()
        left_to_the_collector = [o for o in gc.garbage if isinstance(o, _DirectExchange)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert answers == [b"HTTP/1.1 200 OK"] * 5
    assert left_to_the_collector == []


def test_a_failing_message_middleware_gets_a_json_500_and_the_connection_closes():
    async def broken(exchange, call_next):
        raise RuntimeError("middleware bug")

    async def scenario() -> tuple[bytes, bool]:
        protocol, transport = _connection(create_app(environ=ENV, message_middleware=[broken]))
        _, body, headers = _modern("tools/list")
        raw = rawhttp.request_head(f"{IN_PROCESS}/mcp", headers, len(body)) + body
        answer = await _exchange(protocol, transport, raw)
        return answer, transport.closed

    answer, closed = asyncio.run(scenario())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"connection: close" in head
    assert json.loads(body)["error"] == {"code": -32603, "message": "Internal error"}
    assert closed
