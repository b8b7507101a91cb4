"""Rotating the handle key ring (MCP_HANDLE_KEYS) without breaking handles in flight.

The rotation an operator does: ring "A" -> add B in front ("B,A": B signs, both
verify) -> once every handle signed by A has expired, drop A ("B"). Each step
is a restart of the real server process with the new ring, as an App Service
app-setting change is; a handle minted before the restart is presented after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.app.resilience.tools import ToolSchemas, handle_key_id, tally_outcome
from tests.app.resilience.wire import Expect, check_answer, post, rpc, tool_error_text
from tests.app.serving import running_server

KEY_A = "key-a:alpha-secret-0123456789abcdef"
KEY_B = "key-b:bravo-secret-0123456789abcdef"
KEY_A_OTHER_SECRET = "key-a:a-different-secret-for-key-a"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def _schemas(client: httpx.Client, url: str) -> ToolSchemas:
    response = post(client, url, rpc("tools/list"))
    assert response.status_code == 200, response.text
    return ToolSchemas(response.json()["result"])


def _tally(client: httpx.Client, url: str, add: int, handle: str | None) -> tuple[int, str]:
    response = post(client, url, _schemas(client, url).tally(add, handle))
    check_answer(response, Expect.ok(f"tally +{add}"))
    return tally_outcome(response.json()["result"])


def _refused(client: httpx.Client, url: str, handle: str) -> str:
    """Present `handle`; assert it is refused with a clear error; return the error text."""
    response = post(client, url, _schemas(client, url).tally(1, handle))
    expect = Expect(
        why="retired-key handle",
        tool_error=True,
        message_mentions=("handle",),
        alternatives=(Expect.error("retired-key handle", -32602, message_mentions=("handle",)),),
    )
    check_answer(response, expect)
    answer = response.json()
    return tool_error_text(answer["result"]) if "result" in answer else answer["error"]["message"]


def test_handle_minted_under_a_survives_adding_b_and_is_refused_after_a_is_dropped(client: httpx.Client) -> None:
    with running_server(env={"MCP_HANDLE_KEYS": KEY_A}) as server:
        total, handle_a = _tally(client, server.mcp_url, 5, None)
        total, handle_a = _tally(client, server.mcp_url, 3, handle_a)
        assert total == 8
        assert handle_key_id(handle_a) == "key-a"

    with running_server(env={"MCP_HANDLE_KEYS": f"{KEY_B},{KEY_A}"}) as server:
        # Minted under A, verified under the rotated ring; the continuation is signed by B (first key signs).
        total, handle_b = _tally(client, server.mcp_url, 2, handle_a)
        assert total == 10
        assert handle_key_id(handle_b) == "key-b"
        # A's handle is still good for as long as A is on the ring (handles are not single-use).
        assert _tally(client, server.mcp_url, 0, handle_a)[0] == 8

    with running_server(env={"MCP_HANDLE_KEYS": KEY_B}) as server:
        message = _refused(client, server.mcp_url, handle_a)
        assert "key-a" in message, f"the error should name the retired key id: {message!r}"
        assert "secret" not in message.lower() or "alpha-secret" not in message, message
        # B's handle (minted during the overlap) carries on.
        assert _tally(client, server.mcp_url, 4, handle_b)[0] == 14


def test_a_key_id_reused_with_a_new_secret_refuses_old_handles_as_forged(client: httpx.Client) -> None:
    with running_server(env={"MCP_HANDLE_KEYS": KEY_A}) as server:
        _, handle = _tally(client, server.mcp_url, 1, None)
    with running_server(env={"MCP_HANDLE_KEYS": KEY_A_OTHER_SECRET}) as server:
        message = _refused(client, server.mcp_url, handle)
        assert "alpha-secret" not in message and "a-different-secret" not in message, message


def test_two_processes_with_the_same_ring_continue_each_others_handles(client: httpx.Client) -> None:
    ring = f"{KEY_B},{KEY_A}"
    with (
        running_server(env={"MCP_HANDLE_KEYS": ring, "WEBSITE_INSTANCE_ID": "first"}) as first,
        running_server(env={"MCP_HANDLE_KEYS": ring, "WEBSITE_INSTANCE_ID": "second"}) as second,
    ):
        assert first.process.pid != second.process.pid
        urls = [first.mcp_url, second.mcp_url]
        served_by = set()
        handle = None
        expected = 0
        for step, add in enumerate([7, 11, -4, 0, 25, 3, 9, -1]):
            url = urls[step % 2]
            response = post(client, url, _schemas(client, url).tally(add, handle, id=step))
            check_answer(response, Expect.ok(f"tally step {step}"), step)
            served_by.add(response.headers.get("x-served-by"))
            total, handle = tally_outcome(response.json()["result"])
            expected += add
            assert total == expected, f"step {step} on process {step % 2}: total {total}, expected {expected}"
        assert len(served_by) == 2, f"both processes should have served (X-Served-By): {served_by}"


def test_a_handle_past_its_lifetime_is_refused_as_expired_on_any_process(client: httpx.Client) -> None:
    env = {"MCP_HANDLE_KEYS": KEY_A, "MCP_HANDLE_TTL_SECONDS": "1"}
    with running_server(env=env) as minting, running_server(env=env) as other:
        _, handle = _tally(client, minting.mcp_url, 1, None)
        time.sleep(2.2)  # handles carry whole-second expiries: past 1 s of lifetime for certain
        for server in (minting, other):
            message = _refused(client, server.mcp_url, handle)
            assert "expired" in message.lower(), message
