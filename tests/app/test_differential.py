"""Differential: a server using the SDK's `Context` behaves the same on our transport and on the SDK's own.

One server module (tests/app/differential_server.py: logging, progress, the
request id, structured output, an image, a tool error, a two-round tool with
``requestState``, a resource template, a prompt) is served by ``python -m app
--server ...`` and by the SDK's ``streamable_http_app(stateless_http=True)``.
The official SDK client runs the same script against both, in 2026-07-28 mode
and in legacy mode, and records everything it sees: results, progress and
log notifications, errors. The two records must be equal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import mcp
import pytest
from mcp.types import ElicitResult

from tests.app.serving import ServerProcess, running_server

SERVER = "tests.app.differential_server:server"


@pytest.fixture(scope="module")
def ours() -> Iterator[ServerProcess]:
    with running_server(args=["--server", SERVER]) as srv:
        yield srv


@pytest.fixture(scope="module")
def sdk() -> Iterator[ServerProcess]:
    with running_server(server=["-m", "uvicorn", "tests.app.differential_server:sdk_app"]) as srv:
        yield srv


async def _session_record(url: str, mode: str) -> list[Any]:
    seen: list[Any] = []

    async def on_log(params) -> None:
        seen.append(("log", params.level, params.data))

    async def on_elicit(context, params) -> ElicitResult:
        seen.append(("elicit", params.message))
        return ElicitResult(action="accept", content={"ok": True})

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(("progress", progress, total, message))

    async with mcp.Client(
        url, mode=mode, logging_callback=on_log, log_level="info", elicitation_callback=on_elicit
    ) as client:
        seen.append(("tools", sorted(tool.name for tool in (await client.list_tools()).tools)))
        for name, arguments in [
            ("add", {"a": 2, "b": 40}),
            ("steps", {"count": 3}),
            ("picture", {}),
            ("refuse", {"reason": "policy"}),
            ("transfer", {"amount": 7}),
        ]:
            try:
                result = await client.call_tool(name, arguments, progress_callback=on_progress)
                seen.append(("call", name, result.model_dump(exclude={"meta"}, exclude_none=True)))
            except mcp.MCPError as error:
                seen.append(("call-error", name, error.error.code, error.error.message))
        read = await client.read_resource("greeting://Ada")
        seen.append(("read", [content.model_dump(exclude_none=True) for content in read.contents]))
        prompt = await client.get_prompt("review", {"code": "print(1)"})
        seen.append(("prompt", prompt.model_dump(exclude={"meta"}, exclude_none=True)))
    return seen


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
def test_the_same_client_sees_the_same_server_on_both_transports(ours, sdk, mode):
    ours_seen = asyncio.run(_session_record(ours.mcp_url, mode))
    sdk_seen = asyncio.run(_session_record(sdk.mcp_url, mode))
    assert ours_seen == sdk_seen
    # Not vacuous: the script saw what each feature produces.
    kinds = {entry[0] for entry in ours_seen}
    assert {"tools", "call", "progress", "log", "read", "prompt"} <= kinds
    assert [e for e in ours_seen if e[0] == "progress"][:3] == [
        ("progress", 1.0, 3.0, "step 1 of 3"),
        ("progress", 2.0, 3.0, "step 2 of 3"),
        ("progress", 3.0, 3.0, "step 3 of 3"),
    ]
    calls = {entry[1]: entry[2] for entry in ours_seen if entry[0] == "call"}
    assert calls["add"]["structured_content"] == {"total": 42}
    assert calls["refuse"]["is_error"] is True
    assert calls["picture"]["content"][0]["type"] == "image"
    if mode == "2026-07-28":
        assert ("elicit", "Transfer 7?") in ours_seen
        assert calls["transfer"]["content"][0]["text"] == "transferred 7 (state pending:7)"
