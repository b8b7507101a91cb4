"""The tools, resources and prompt, driven by the official Python SDK client in every connect mode,
and the seed sample's k6 requests, sent byte for byte as its script sends them."""

from __future__ import annotations

import asyncio
import json
import socket

import mcp
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from app.demo.facts import FACTS
from tests.app.conftest import validate
from tests.app.resilience.rawhttp import connect, read_response, request_head
from tests.app.serving import running_server

MODES = ["auto", "2026-07-28", "legacy"]
EXPECTED_VERSION = {"auto": "2026-07-28", "2026-07-28": "2026-07-28", "legacy": "2025-11-25"}


def run(coro):
    return asyncio.run(coro)


def seed_json(result: types.CallToolResult) -> dict:
    """The JSON object a tool's text content carries, checked to equal its structured content."""
    assert not result.is_error, result.content
    (block,) = result.content
    text = json.loads(block.text)
    assert text == result.structured_content
    return text


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

            # Each seed tool's text content is the seed's JSON, and its structured content the same object.
            whoami = await client.call_tool("whoami", {})
            assert seed_json(whoami) == {
                "instance_id": "instance-under-test",
                "hostname": socket.gethostname(),
                "site_name": "local",
                "slot_name": "local",
                "pid": server.process.pid,
                "caller": None,  # no Easy Auth here
            }

            echoed = await client.call_tool("echo", {"message": "grüße ☃"})
            assert seed_json(echoed) == {"message": "grüße ☃", "instance_id": "instance-under-test"}

            fact = await client.call_tool("lookup_fact", {"topic": " Handles "})  # the seed's matching
            assert seed_json(fact) == {"topic": "handles", "fact": FACTS["handles"], "found": True}

            unknown = await client.call_tool("lookup_fact", {"topic": "nope"})  # an answer, not an error
            assert seed_json(unknown) == {"topic": "nope", "found": False, "available_topics": sorted(FACTS)}

            primes = await client.call_tool("compute_primes", {"limit": 100})
            assert seed_json(primes) == {"limit": 100, "prime_count": 25, "instance_id": "instance-under-test"}
            default = await client.call_tool("compute_primes", {})  # the seed's default limit
            assert seed_json(default) == {"limit": 5000, "prime_count": 669, "instance_id": "instance-under-test"}

            first = await client.call_tool("tally", {"add": 40})
            second = await client.call_tool("tally", {"add": 2, "handle": first.structured_content["handle"]})
            assert (second.structured_content["total"], second.structured_content["count"]) == (42, 2)

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
        ({"limit": "many"}, "limit\n  Input should be a valid integer"),
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


# The seed sample's loadtest/k6-mcp.js, byte for byte: JSON.stringify of its objects, and only the headers its
# http.post sets (Content-Type) plus k6's own User-Agent. No Accept, no _meta, no version headers, and setup()'s
# initialize has no params at all.
SEED_K6_REQUESTS = {
    "setup() initialize": b'{"jsonrpc":"2.0","id":"init","method":"initialize"}',
    "callTool('whoami', {})": (
        b'{"jsonrpc":"2.0","id":"whoami-1-0","method":"tools/call","params":{"name":"whoami","arguments":{}}}'
    ),
    "callTool('compute_primes', {limit: PRIME_LIMIT})": (
        b'{"jsonrpc":"2.0","id":"compute_primes-1-0","method":"tools/call",'
        b'"params":{"name":"compute_primes","arguments":{"limit":20000}}}'
    ),
}
SEED_K6_HEADERS = {"User-Agent": "k6/1.1.0 (https://k6.io/)", "Content-Type": "application/json"}
APP_SERVICE_ENV = {"WEBSITE_INSTANCE_ID": "seed-instance", "WEBSITE_SITE_NAME": "seed-site", "MCP_SLOT_NAME": "staging"}


@pytest.fixture(scope="module")
def app_service_server():
    """The demo with the app settings App Service gives a site."""
    with running_server(env=APP_SERVICE_ENV) as srv:
        yield srv


def seed_k6_post(url: str, body: bytes) -> tuple[int, dict]:
    with connect(url) as sock:
        sock.sendall(request_head(url, SEED_K6_HEADERS, len(body)) + body)
        status, _, payload = read_response(sock, timeout=30)
    return status, json.loads(payload)


@pytest.mark.parametrize("body", SEED_K6_REQUESTS.values(), ids=SEED_K6_REQUESTS.keys())
def test_the_seed_k6_scripts_requests_are_answered_unchanged(app_service_server, body):
    status, message = seed_k6_post(app_service_server.mcp_url, body)
    # The script's checks: 'status 200' and 'no jsonrpc error'.
    assert status == 200
    assert "error" not in message and message["id"] == json.loads(body)["id"]
    result = message["result"]
    if json.loads(body)["method"] == "initialize":
        assert result["protocolVersion"] == "2025-11-25"  # the latest handshake version
        return
    # What it counts hits per instance by: result.content[0].text, parsed, .instance_id.
    assert json.loads(result["content"][0]["text"])["instance_id"] == "seed-instance"


def test_whoami_reports_the_app_service_site_slot_and_instance(app_service_server):
    body = SEED_K6_REQUESTS["callTool('whoami', {})"]
    _, message = seed_k6_post(app_service_server.mcp_url, body)
    identity = json.loads(message["result"]["content"][0]["text"])
    assert identity == {
        "instance_id": "seed-instance",
        "hostname": socket.gethostname(),
        "site_name": "seed-site",
        "slot_name": "staging",
        "pid": app_service_server.process.pid,
        "caller": None,
    }
