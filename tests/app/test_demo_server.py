"""The tools, resources and prompt, driven by the official Python SDK client in every connect mode."""

from __future__ import annotations

import asyncio

import mcp
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from tests.app.conftest import validate

MODES = ["auto", "2026-07-28", "legacy"]
EXPECTED_VERSION = {"auto": "2026-07-28", "2026-07-28": "2026-07-28", "legacy": "2025-11-25"}


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("mode", MODES)
def test_sdk_client_uses_every_tool_resource_and_prompt(server, mode):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode=mode) as client:
            assert client.protocol_version == EXPECTED_VERSION[mode]
            if mode == "auto":  # discovered, not synthesized: the server's own identity and catalogue
                assert client.server_info.name == "mcpscale"
                assert client.instructions and "tally" in client.instructions
                assert client.server_capabilities.tools is not None

            tools = await client.list_tools()
            assert [t.name for t in tools.tools] == [
                "whoami",
                "echo",
                "lookup_fact",
                "compute_primes",
                "tally",
                "pick_fact",
            ]

            whoami = await client.call_tool("whoami", {})
            assert not whoami.is_error
            assert whoami.structured_content["instance"] == "instance-under-test"
            assert whoami.structured_content["pid"] == server.process.pid
            assert whoami.structured_content["slot"] == "local"

            echoed = await client.call_tool("echo", {"text": "grüße ☃"})
            assert echoed.structured_content == {"result": "grüße ☃"}

            fact = await client.call_tool("lookup_fact", {"key": "handles"})
            assert fact.structured_content["uri"] == "fact://handles"
            assert "signed" in fact.structured_content["text"]

            primes = await client.call_tool("compute_primes", {"limit": 100})
            assert primes.structured_content == {
                "limit": 100,
                "count": 25,
                "largest": 97,
                "tail": [53, 59, 61, 67, 71, 73, 79, 83, 89, 97],
            }

            first = await client.call_tool("tally", {"add": 40})
            second = await client.call_tool("tally", {"add": 2, "handle": first.structured_content["handle"]})
            assert (second.structured_content["total"], second.structured_content["count"]) == (42, 2)

            unknown_fact = await client.call_tool("lookup_fact", {"key": "nope"})
            assert unknown_fact.is_error and "unknown fact key 'nope'" in unknown_fact.content[0].text

            read = await client.read_resource("fact://autoscale")
            assert read.contents[0].text.startswith("Autoscale changes")
            assert read.contents[0].mime_type == "text/plain"

            listed = await client.list_resources()
            assert "fact://mcp" in {str(r.uri) for r in listed.resources}
            templates = await client.list_resource_templates()
            assert [t.uri_template for t in templates.resource_templates] == ["fact://{key}"]

            prompt = await client.get_prompt("explain_fact", {"key": "mcp"})
            assert "Model Context Protocol" in prompt.messages[0].content.text

            with pytest.raises(MCPError) as not_found:
                await client.read_resource("fact://does-not-exist")
            assert not_found.value.error.code == -32602
            assert not_found.value.error.data == {"uri": "fact://does-not-exist"}

            with pytest.raises(MCPError) as unknown_tool:
                await client.call_tool("does_not_exist", {})
            assert unknown_tool.value.error.code == -32602

    run(scenario())


async def _pick_staging_slot(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert params.message == "Which fact would you like?"
    return types.ElicitResult(action="accept", content={"key": "staging-slot"})


@pytest.mark.parametrize("mode", ["auto", "2026-07-28"])
def test_pick_fact_asks_the_user_through_the_clients_form(server, mode):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode=mode, elicitation_callback=_pick_staging_slot) as client:
            result = await client.call_tool("pick_fact", {})
            assert not result.is_error
            assert result.structured_content["uri"] == "fact://staging-slot"

    run(scenario())


def test_pick_fact_without_the_elicitation_capability_is_32021(server):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode="2026-07-28") as client:
            with pytest.raises(MCPError) as error:
                await client.call_tool("pick_fact", {})
            assert error.value.error.code == -32021
            assert error.value.error.data == {"requiredCapabilities": {"elicitation": {"form": {}}}}

    run(scenario())


def test_pick_fact_tells_a_legacy_client_to_use_lookup_fact(server):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode="legacy", elicitation_callback=_pick_staging_slot) as client:
            result = await client.call_tool("pick_fact", {})
            assert result.is_error and "use lookup_fact" in result.content[0].text

    run(scenario())


def test_modern_client_discovers_the_server(server):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode="2026-07-28") as client:
            discovered = await client.session.send_discover("2026-07-28")
            validate(discovered, "DiscoverResult")
            assert discovered["supportedVersions"][0] == "2026-07-28"

    run(scenario())


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        # The SDK's own text for arguments its schema refuses: the argument on a line, then what was wrong.
        ({"limit": 10_000_001}, "limit\n  Input should be less than or equal to 10000000"),
        ({"limit": 1}, "limit\n  Input should be greater than or equal to 2"),
        ({}, "limit\n  Field required"),
    ],
)
def test_compute_primes_rejects_out_of_bound_input_with_a_clear_error(server, arguments, needle):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode="2026-07-28") as client:
            result = await client.call_tool("compute_primes", arguments)
            assert result.is_error
            assert needle in result.content[0].text

    run(scenario())


def test_tools_advertise_their_bounds_in_the_input_schema(server):
    async def scenario():
        async with mcp.Client(server.mcp_url, mode="2026-07-28") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            limit = tools["compute_primes"].input_schema["properties"]["limit"]
            assert (limit["minimum"], limit["maximum"]) == (2, 10_000_000)
            assert tools["tally"].input_schema["properties"]["add"]["maximum"] == 1_000_000

    run(scenario())
