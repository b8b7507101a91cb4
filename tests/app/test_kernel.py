"""The SDK kernel path (app/kernel.py) over real HTTP: what a request with a `Context` tool gets back.

A request is answered ``application/json`` unless its handler sends a
notification about it; then ``text/event-stream``: those notifications, then
the result. Notifications never cross to another request's stream, a client
that does not accept SSE gets none, and a client that goes away cancels the
handler.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.app.conftest import modern_headers, modern_request
from tests.app.serving import ServerProcess, running_server


@pytest.fixture(scope="module")
def streaming() -> Iterator[ServerProcess]:
    with running_server(args=["--server", "tests.app.streaming_server:server"]) as srv:
        yield srv


def _call(url: str, tool: str, arguments: dict, request_id: int, accept: str | None = None) -> httpx.Response:
    body = modern_request("tools/call", {"name": tool, "arguments": arguments}, request_id)
    body["params"]["_meta"] = {**body["params"]["_meta"], "progressToken": f"token-{request_id}"}
    headers = modern_headers("tools/call", tool)
    if accept is not None:
        headers["Accept"] = accept
    return httpx.post(url, json=body, headers=headers, timeout=30)


def _events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def test_notifications_stream_as_sse_then_the_result_last(streaming):
    response = _call(streaming.mcp_url, "count", {"upto": 3}, 7)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-served-by"] == "local"
    events = _events(response)
    assert [e["params"]["progress"] for e in events[:-1]] == [1, 2, 3]
    assert {e["params"]["progressToken"] for e in events[:-1]} == {"token-7"}
    assert events[-1]["id"] == 7 and events[-1]["result"]["content"][0]["text"] == "counted to 3"


def test_a_handler_that_sends_nothing_is_answered_json(streaming):
    response = _call(streaming.mcp_url, "quiet", {}, 8)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["content"][0]["text"] == "quiet 8"


def test_a_client_that_does_not_accept_sse_gets_json_and_no_notifications(streaming):
    response = _call(streaming.mcp_url, "count", {"upto": 3}, 9, accept="application/json")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["content"][0]["text"] == "counted to 3"


def test_concurrent_requests_each_get_only_their_own_notifications(streaming):
    responses: dict[int, httpx.Response] = {}

    def call(request_id: int) -> None:
        responses[request_id] = _call(streaming.mcp_url, "count", {"upto": 5, "pause": 0.02}, request_id)

    threads = [threading.Thread(target=call, args=(request_id,)) for request_id in range(20, 26)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for request_id, response in responses.items():
        events = _events(response)
        progress = [e["params"] for e in events[:-1]]
        assert [p["progressToken"] for p in progress] == [f"token-{request_id}"] * 5
        assert [p["message"] for p in progress] == [f"{request_id}:{step}" for step in range(1, 6)]
        assert events[-1]["id"] == request_id


def test_a_client_that_goes_away_cancels_the_handler(streaming):
    body = json.dumps(modern_request("tools/call", {"name": "linger", "arguments": {"seconds": 30}}, 41)).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/call", "linger").items())
    port = int(streaming.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)  # the tool is running
    deadline = time.monotonic() + 10
    while "linger 41 cancelled" not in streaming.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "linger 41 cancelled" in streaming.output()


OLD_RING = "old:" + "o" * 40
NEW_RING = "new:" + "n" * 40


def _transfer(url: str, params: dict) -> dict:
    body = modern_request("tools/call", {"name": "transfer", **params}, 51)
    body["params"]["_meta"] = {
        **body["params"]["_meta"],
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }
    return httpx.post(url, json=body, headers=modern_headers("tools/call", "transfer"), timeout=30).json()


def test_request_state_rotates_without_breaking_a_round_in_flight():
    """Rotation as for handle keys: an instance already on [new, old] completes a round an [old] one started,
    and once old is retired a round it sealed is refused with the spec's -32602."""
    server = ["--server", "tests.app.differential_server:server"]
    with (
        running_server(env={"MCP_REQUEST_STATE_KEYS": OLD_RING}, args=server) as before,
        running_server(env={"MCP_REQUEST_STATE_KEYS": f"{NEW_RING},{OLD_RING}"}, args=server) as during,
        running_server(env={"MCP_REQUEST_STATE_KEYS": NEW_RING}, args=server) as after,
    ):
        first = _transfer(before.mcp_url, {"arguments": {"amount": 7}})["result"]
        assert first["resultType"] == "input_required"
        answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
        retry = {"arguments": {"amount": 7}, "inputResponses": answer, "requestState": first["requestState"]}
        done = _transfer(during.mcp_url, retry)["result"]
        assert done["content"][0]["text"] == "transferred 7 (state pending:7)"
        refused = _transfer(after.mcp_url, retry)["error"]
        assert refused["code"] == -32602 and refused["message"] == "Invalid or expired requestState"
