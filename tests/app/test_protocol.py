"""The dispatcher over real HTTP: results valid against the spec's schema, every error-table row, both eras."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from mcp_types._v2025_11_25 import InitializeResult as InitializeResult2025

from app.protocol import Exchange, chain
from tests.app.conftest import HANDLE_KEYS, META, MODERN, call_modern, modern_headers, modern_request, rpc, validate

SERVER_INFO = {"name": "mcpscale", "version": "0.1.0"}


# --------------------------------------------------------------- results, validated against schema.json

MODERN_RESULTS = [
    ("server/discover", {}, None, "DiscoverResult"),
    ("tools/list", {}, None, "ListToolsResult"),
    ("tools/call", {"name": "whoami", "arguments": {}}, "whoami", "CallToolResult"),
    ("tools/call", {"name": "echo", "arguments": {"message": "hi ☃"}}, "echo", "CallToolResult"),
    ("tools/call", {"name": "lookup_fact", "arguments": {"topic": "mcp"}}, "lookup_fact", "CallToolResult"),
    ("tools/call", {"name": "compute_primes", "arguments": {"limit": 30}}, "compute_primes", "CallToolResult"),
    ("tools/call", {"name": "tally", "arguments": {"add": 2}}, "tally", "CallToolResult"),
    ("tools/call", {"name": "compute_primes", "arguments": {"limit": "x"}}, "compute_primes", "CallToolResult"),
    ("resources/list", {}, None, "ListResourcesResult"),
    ("resources/templates/list", {}, None, "ListResourceTemplatesResult"),
    ("resources/read", {"uri": "fact://mcp"}, "fact://mcp", "ReadResourceResult"),
    ("prompts/list", {}, None, "ListPromptsResult"),
    ("prompts/get", {"name": "explain_fact", "arguments": {"key": "handles"}}, "explain_fact", "GetPromptResult"),
]


@pytest.mark.parametrize(("method", "params", "name", "definition"), MODERN_RESULTS, ids=lambda v: str(v)[:30])
def test_every_modern_result_is_valid_against_the_schema(http, method, params, name, definition):
    response = call_modern(http, method, params, name)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 1
    validate(body["result"], definition)
    assert body["result"]["resultType"] == "complete"
    assert body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"] == SERVER_INFO


@pytest.mark.parametrize(
    "method", ["server/discover", "tools/list", "resources/list", "resources/templates/list", "prompts/list"]
)
def test_cacheable_results_carry_ttl_and_scope(http, method):
    result = call_modern(http, method).json()["result"]
    assert isinstance(result["ttlMs"], int) and result["ttlMs"] >= 0
    assert result["cacheScope"] == "public"


def test_discover_names_versions_and_capabilities(http):
    result = call_modern(http, "server/discover").json()["result"]
    # The per-request versions, as the SDK derives them; handshake-era clients reach the server through initialize.
    assert result["supportedVersions"] == [MODERN]
    assert set(result["capabilities"]) == {"tools", "resources", "prompts"}
    assert result["capabilities"]["tools"] == {"listChanged": False}  # the demo declares a static catalogue


def test_tool_list_is_exactly_the_services_tools(http):
    tools = call_modern(http, "tools/list").json()["result"]["tools"]
    assert [t["name"] for t in tools] == ["whoami", "echo", "lookup_fact", "compute_primes", "tally", "pick_fact"]
    assert all(t["description"] and t["inputSchema"]["type"] == "object" for t in tools)


def test_tool_argument_error_is_an_is_error_result_naming_the_argument(http):
    response = call_modern(
        http, "tools/call", {"name": "compute_primes", "arguments": {"limit": "many"}}, "compute_primes"
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["isError"] is True
    # The SDK's own text for an argument its schema refuses: the tool, the argument, what was wrong.
    assert result["content"][0]["text"].startswith("Error executing tool compute_primes: 1 validation error")
    assert "limit\n  Input should be a valid integer" in result["content"][0]["text"]


# --------------------------------------------------------------- the digest's error table, one row each


def test_row_parse_error_is_400_32700(http):
    response = rpc(http, None, modern_headers("tools/list"), content=b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert "id" not in response.json()  # unknown id: omitted, as the 2026 schema allows (null is not a RequestId)
    validate(response.json(), "JSONRPCErrorResponse")


@pytest.mark.parametrize(
    "body",
    [
        [modern_request("tools/list")],  # batch
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        "just a string",
    ],
    ids=["batch", "wrong-jsonrpc", "no-method", "object-id", "a-response", "string"],
)
def test_row_invalid_request_is_400_32600(http, body):
    response = rpc(http, body, modern_headers("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


def test_row_unknown_method_is_404_32601(http):
    response = rpc(http, modern_request("tools/frobnicate", request_id=7), modern_headers("tools/frobnicate"))
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == -32601 and body["id"] == 7
    validate(body, "JSONRPCErrorResponse")


@pytest.mark.parametrize("method", ["initialize", "ping", "logging/setLevel", "resources/subscribe"])
def test_methods_removed_in_2026_are_404_32601_for_modern_requests(http, method):
    response = rpc(http, modern_request(method), modern_headers(method))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


def test_row_bad_params_is_400_32602(http):
    response = rpc(
        http, {**modern_request("tools/list"), "params": ["not", "an", "object"]}, modern_headers("tools/list")
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


def test_row_unknown_tool_is_400_32602(http):
    response = call_modern(http, "tools/call", {"name": "no_such_tool", "arguments": {}}, "no_such_tool")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32602 and error["message"] == "Unknown tool: no_such_tool"
    assert "whoami" in error["data"]["tools"]


@pytest.mark.parametrize(
    "meta",
    [
        None,
        {"io.modelcontextprotocol/clientCapabilities": {}},
        {"io.modelcontextprotocol/protocolVersion": MODERN},
    ],
    ids=["no-meta", "no-protocol-version", "no-client-capabilities"],
)
def test_row_missing_meta_field_is_400_32602(http, meta):
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {} if meta is None else {"_meta": meta}}
    response = rpc(http, body, modern_headers("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602
    assert response.json()["id"] == 3


def test_row_resource_not_found_is_400_32602_with_the_uri(http):
    response = call_modern(http, "resources/read", {"uri": "fact://no-such-fact"}, "fact://no-such-fact")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32602 and error["data"] == {"uri": "fact://no-such-fact"}
    other = call_modern(http, "resources/read", {"uri": "test://elsewhere"}, "test://elsewhere").json()["error"]
    assert other["code"] == -32602 and other["data"] == {"uri": "test://elsewhere"}


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({"Mcp-Method": "tools/list"}, "Mcp-Method header value 'tools/list' does not match body value 'tools/call'"),
        ({"Mcp-Method": None}, "required header Mcp-Method is missing"),
        ({"Mcp-Name": "echo"}, "Mcp-Name header value 'echo' does not match body value 'whoami'"),
        ({"Mcp-Name": None}, "required header Mcp-Name is missing"),
        ({"MCP-Protocol-Version": None}, "required header MCP-Protocol-Version is missing"),
        ({"Mcp-Name": "=?base64?not base64!?="}, "is not valid '=?base64?...?='"),
    ],
    ids=["method-mismatch", "method-missing", "name-mismatch", "name-missing", "version-missing", "bad-base64"],
)
def test_row_header_mismatch_or_missing_is_400_32020(http, headers, needle):
    sent = modern_headers("tools/call", "whoami")
    for key, value in headers.items():
        if value is None:
            sent.pop(key)
        else:
            sent[key] = value
    response = rpc(http, modern_request("tools/call", {"name": "whoami", "arguments": {}}), sent)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32020
    assert needle in error["message"]
    validate(response.json(), "JSONRPCErrorResponse")


def test_version_header_disagreeing_with_meta_is_32020_not_routed_by_header(http):
    body = modern_request("tools/list")
    body["params"]["_meta"] = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    response = rpc(http, body, modern_headers("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert (
        "MCP-Protocol-Version header value '2026-07-28' does not match body value '2099-01-01'"
        in (response.json()["error"]["message"])
    )


def test_mcp_name_in_base64_form_is_decoded(http):
    uri = "fact://staging-slot"
    encoded = "=?base64?" + base64.b64encode(uri.encode()).decode() + "?="
    response = rpc(http, modern_request("resources/read", {"uri": uri}), modern_headers("resources/read", encoded))
    assert response.status_code == 200
    non_ascii = "=?base64?" + base64.b64encode("wh☃ami".encode()).decode() + "?="
    response = rpc(http, modern_request("tools/call", {"name": "wh☃ami"}), modern_headers("tools/call", non_ascii))
    assert response.json()["error"]["code"] == -32602  # header matched; the tool does not exist


def test_duplicated_routing_header_is_32020(http):
    headers = [(k, v) for k, v in modern_headers("tools/list").items()] + [("Mcp-Method", "tools/list")]
    response = http.post("/mcp", content=json.dumps(modern_request("tools/list")), headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_row_missing_required_client_capability_is_400_32021_naming_it(http):
    # pick_fact asks the user through a form; this request declares no capabilities at all
    response = call_modern(http, "tools/call", {"name": "pick_fact", "arguments": {}}, "pick_fact")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == -32021 and body["id"] == 1
    assert body["error"]["data"] == {"requiredCapabilities": {"elicitation": {"form": {}}}}
    validate(body, "JSONRPCErrorResponse")
    validate(body["error"]["data"]["requiredCapabilities"], "ClientCapabilities")


def _with_capabilities(body, capabilities):
    body["params"]["_meta"] = {**META, "io.modelcontextprotocol/clientCapabilities": capabilities}
    return body


def test_input_required_round_trip_on_the_wire(http):
    first = rpc(
        http,
        _with_capabilities(modern_request("tools/call", {"name": "pick_fact", "arguments": {}}), {"elicitation": {}}),
        modern_headers("tools/call", "pick_fact"),
    )
    assert first.status_code == 200
    result = first.json()["result"]
    validate(result, "InputRequiredResult")
    assert result["resultType"] == "input_required"
    form = result["inputRequests"]["fact"]
    assert form["method"] == "elicitation/create"
    assert "staging-slot" in form["params"]["requestedSchema"]["properties"]["key"]["enum"]

    answer = {"fact": {"action": "accept", "content": {"key": "staging-slot"}}}
    retry = rpc(
        http,
        _with_capabilities(
            modern_request("tools/call", {"name": "pick_fact", "arguments": {}, "inputResponses": answer}),
            {"elicitation": {"form": {}}},
        ),
        modern_headers("tools/call", "pick_fact"),
    )
    assert retry.status_code == 200
    validate(retry.json()["result"], "CallToolResult")
    assert retry.json()["result"]["structuredContent"]["uri"] == "fact://staging-slot"


@pytest.mark.parametrize(
    ("responses", "status", "needle"),
    [
        ({"fact": {"action": "decline"}}, 200, "no fact picked: the user chose to decline"),
        ({"fact": {"action": "accept", "content": {"key": "nope"}}}, 200, "got 'nope'"),
        ({"fact": "yes"}, 400, "Invalid request parameters"),  # the SDK's envelope check: -32602, no pydantic text
    ],
)
def test_bad_input_responses_are_named(http, responses, status, needle):
    params = {"name": "pick_fact", "arguments": {}, "inputResponses": responses}
    response = rpc(
        http,
        _with_capabilities(modern_request("tools/call", params), {"elicitation": {}}),
        modern_headers("tools/call", "pick_fact"),
    )
    assert response.status_code == status
    body = response.json()
    text = body["result"]["content"][0]["text"] if status == 200 else body["error"]["message"]
    assert needle in text


def test_row_unsupported_protocol_version_is_400_32022_naming_supported(http):
    body = modern_request("tools/list")
    body["params"]["_meta"] = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    response = rpc(http, body, modern_headers("tools/list", version="2099-01-01"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32022
    assert error["data"] == {"supported": ["2026-07-28"], "requested": "2099-01-01"}  # as server/discover lists
    assert "2025-11-25, 2025-06-18, 2025-03-26 through initialize" in error["message"]
    validate(response.json(), "JSONRPCErrorResponse")


def test_unknown_version_header_without_meta_is_also_32022(http):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = rpc(http, body, {"MCP-Protocol-Version": "1900-01-01"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32022


# --------------------------------------------------------------- notifications and the legacy era


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"jsonrpc": "2.0", "method": "notifications/initialized"}, {"MCP-Protocol-Version": "2025-11-25"}),
        (
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
            modern_headers("notifications/cancelled"),
        ),
    ],
    ids=["legacy-initialized", "modern-cancelled"],
)
def test_notifications_are_202_without_body(http, body, headers):
    response = rpc(http, body, headers)
    assert response.status_code == 202
    assert response.content == b""


def legacy(http, method, params=None, version="2025-11-25", request_id=1):
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, **({"params": params} if params is not None else {})}
    return rpc(http, body, {"MCP-Protocol-Version": version} if version else {})


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26"])
def test_legacy_initialize_is_answered_statelessly(http, version):
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}
    response = rpc(http, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    result = response.json()["result"]
    # InitializeResult is not in the 2026 schema (initialize was removed); check it against the 2025-11-25 wire model
    InitializeResult2025.model_validate(result)
    assert result["protocolVersion"] == version
    assert result["serverInfo"] == SERVER_INFO
    assert set(result["capabilities"]) == {"tools", "resources", "prompts"}
    # the handshake-era follow-up, with no session anywhere
    follow_up = legacy(http, "tools/list", version=version if version != "2025-03-26" else None)
    assert follow_up.status_code == 200 and "mcp-session-id" not in follow_up.headers
    assert len(follow_up.json()["result"]["tools"]) == 6


def test_legacy_initialize_for_an_unserved_version_counter_offers_the_latest(http):
    params = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}
    response = rpc(http, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    assert response.json()["result"]["protocolVersion"] == "2025-11-25"


def test_legacy_ping_and_every_legacy_result_has_the_2026_schema_shape_less_the_2026_only_fields(http):
    """Handshake-era results are shaped for their version, as the SDK shapes them: no resultType, cache hints or
    serverInfo stamp; with those added, each is a valid 2026-07-28 result (the content types are shared)."""
    assert legacy(http, "ping").json()["result"] == {}
    only_2026 = {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
    for method, params, definition in [
        ("tools/list", {}, "ListToolsResult"),
        ("tools/call", {"name": "whoami", "arguments": {}}, "CallToolResult"),
        ("resources/list", {}, "ListResourcesResult"),
        ("resources/templates/list", {}, "ListResourceTemplatesResult"),
        ("resources/read", {"uri": "fact://autoscale"}, "ReadResourceResult"),
        ("prompts/list", {}, "ListPromptsResult"),
        ("prompts/get", {"name": "explain_fact", "arguments": {"key": "mcp"}}, "GetPromptResult"),
    ]:
        response = legacy(http, method, params)
        assert response.status_code == 200, (method, response.text)
        result = response.json()["result"]
        assert not set(only_2026) & set(result), (method, result)
        validate({**only_2026, **result}, definition)


def test_legacy_errors_travel_with_http_200_so_clients_do_not_read_them_as_lost_sessions(http):
    unknown = legacy(http, "tools/frobnicate")
    assert unknown.status_code == 200 and unknown.json()["error"]["code"] == -32601
    missing = legacy(http, "resources/read", {"uri": "fact://nope"})
    assert missing.status_code == 200 and missing.json()["error"] == {
        "code": -32602,
        "message": "Resource not found: no fact with key 'nope'; known keys: mcp, stateless, handles, app-service, "
        "staging-slot, autoscale",
        "data": {"uri": "fact://nope"},
    }


def test_initialize_with_modern_headers_is_404_32601(http):
    params = {"protocolVersion": MODERN, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}
    response = rpc(
        http, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, modern_headers("initialize")
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


def test_modern_discover_is_not_a_legacy_method(http):
    response = legacy(http, "server/discover")
    assert response.json()["error"]["code"] == -32601


@pytest.mark.parametrize("method", ["tools/list", "resources/list", "resources/templates/list", "prompts/list"])
def test_a_cursor_is_refused_because_none_was_ever_issued(http, method):
    response = call_modern(http, method, {"cursor": "page-2"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602
    assert "Invalid cursor" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "params"), [("tools/call", {"name": 5}), ("resources/read", {"uri": ["fact://mcp"]})]
)
def test_a_non_string_name_is_bad_params_not_a_header_mismatch(http, method, params):
    response = rpc(http, modern_request(method, params), modern_headers(method))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "Invalid params for prompt explain_fact: Missing required arguments: {'key'}"),
        (
            {"key": 5},
            "Invalid params for prompt explain_fact: params.arguments.key: Input should be a valid string (got 5)",
        ),
        ({"key": "nope"}, "Invalid params for prompt explain_fact: unknown fact key 'nope'; known keys: mcp,"),
    ],
)
def test_prompt_argument_errors_name_the_argument(http, arguments, message):
    response = call_modern(http, "prompts/get", {"name": "explain_fact", "arguments": arguments}, "explain_fact")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602
    assert response.json()["error"]["message"].startswith(message)


def test_unknown_prompt_is_32602(http):
    response = call_modern(http, "prompts/get", {"name": "nope"}, "nope")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": -32602,
        "message": "Invalid params for prompt nope: Unknown prompt: nope",
    }


def test_input_responses_on_a_legacy_request_do_not_reach_the_tool(http):
    """inputResponses are not part of the handshake era: the tool sees a legacy call, and says what it needs."""
    params = {"name": "pick_fact", "arguments": {}, "inputResponses": {"fact": {"action": "accept"}}}
    response = legacy(http, "tools/call", params)
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["isError"] is True
    assert "needs a 2026-07-28 client" in result["content"][0]["text"]


def test_server_info_joins_a_result_meta_the_sdk_already_set():
    from mcp.server.mcpserver import MCPServer
    from mcp.types import CallToolResult, TextContent

    from app.protocol import Dispatcher

    dispatcher = Dispatcher(MCPServer(SERVER_INFO["name"], version=SERVER_INFO["version"], log_level="WARNING"))
    plain = json.loads(dispatcher._with_server_info(CallToolResult(content=[TextContent(type="text", text="x")])))
    assert plain["_meta"] == {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
    assert plain["content"] == [{"type": "text", "text": "x"}]
    with_meta = json.loads(dispatcher._with_server_info(CallToolResult(content=[], _meta={"com.example/k": 1})))
    assert with_meta["_meta"] == {"com.example/k": 1, "io.modelcontextprotocol/serverInfo": SERVER_INFO}
    validate(with_meta, "CallToolResult")


def _dispatcher_with_roles(own_middleware: bool):
    from mcp.server.mcpserver import MCPServer

    from app.identity import ToolRoles
    from app.protocol import Dispatcher

    server = MCPServer("roles", log_level="WARNING")

    @server.tool()
    async def open_tool() -> str:
        return "open"

    @server.tool()
    async def gated() -> str:
        return "gated"

    if own_middleware:  # a team's middleware: the kernel answers every list and call

        async def passthrough(ctx, call_next):
            return await call_next(ctx)

        server.middleware.append(passthrough)
    return Dispatcher(server, easy_auth=True, tool_roles=ToolRoles({"gated": frozenset({"Gate.Use"})}))


def _exchange(method: str, params: dict, roles: tuple[str, ...]):
    from app.protocol import Exchange

    claims = [{"typ": "roles", "val": role} for role in roles]
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode())
    headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
    if method == "tools/call":
        headers["mcp-name"] = params["name"]
    return Exchange(
        headers=headers,
        raw_headers=[(b"x-ms-client-principal", principal), (b"x-ms-client-principal-id", b"oid-1")],
        message={"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": META}},
    )


@pytest.mark.parametrize("own_middleware", [False, True], ids=["fast path", "kernel path"])
def test_tool_roles_hold_on_the_fast_path_and_the_kernel_path(own_middleware):
    import asyncio

    async def run() -> None:
        dispatcher = _dispatcher_with_roles(own_middleware)
        await dispatcher.start()
        for roles, listed in [((), ["open_tool"]), (("Gate.Use",), ["open_tool", "gated"])]:
            reply = await dispatcher.handle(_exchange("tools/list", {}, roles))
            result = json.loads(reply.body)["result"]
            assert [tool["name"] for tool in result["tools"]] == listed
            assert result["cacheScope"] == "private"
        refused = await dispatcher.handle(_exchange("tools/call", {"name": "gated"}, ()))
        assert refused.status == 403 and "needs the app role Gate.Use" in json.loads(refused.body)["error"]["message"]
        allowed = await dispatcher.handle(_exchange("tools/call", {"name": "gated"}, ("Gate.Use",)))
        assert json.loads(allowed.body)["result"]["content"][0]["text"] == "gated"

    asyncio.run(run())


def test_tool_roles_naming_a_tool_the_server_lacks_stop_start_up():
    import asyncio

    from mcp.server.mcpserver import MCPServer

    from app.identity import ToolRoles
    from app.protocol import Dispatcher
    from app.settings import SettingsError

    dispatcher = Dispatcher(MCPServer("roles", log_level="WARNING"), tool_roles=ToolRoles({"tallly": frozenset("x")}))
    with pytest.raises(SettingsError, match="MCP_TOOL_ROLES names tool\\(s\\) the server does not have: tallly"):
        asyncio.run(dispatcher.start())


def test_the_fast_path_answers_what_the_sdk_kernel_answers():
    """Every answer the dispatcher gives by hand (cached lists and discover per version, tools/call of a tool
    without a Context) parses to exactly what the SDK's kernel returns for the same request."""
    from app.demo.server import DemoSettings, build_server
    from app.handles import KeyRing
    from app.kernel import host_server
    from app.protocol import LEGACY_VERSIONS, Dispatcher

    server = host_server(
        build_server(DemoSettings.from_env({"MCP_HANDLE_KEYS": HANDLE_KEYS})), KeyRing.parse("k:" + "x" * 40)
    )
    dispatcher = Dispatcher(server)
    calls = [("whoami", {}), ("echo", {"message": "hi"}), ("lookup_fact", {"topic": "mcp"}), ("echo", {})]

    async def compare() -> int:
        await dispatcher.start()
        compared = 0
        for (method, version), cached in dispatcher._cached.items():
            if method == "initialize":
                continue
            params = (
                {"_meta": {**META, "io.modelcontextprotocol/protocolVersion": version}} if version == MODERN else None
            )
            assert json.loads(cached) == await dispatcher.kernel.call(method, params, 1, version, None, {}, {}, None)
            compared += 1
        for version in (MODERN, *LEGACY_VERSIONS):
            era = "modern" if version == MODERN else "legacy"
            for name, arguments in calls:
                params = {"name": name, "arguments": arguments}
                if era == "modern":
                    params["_meta"] = META
                exchange = Exchange(headers={}, params=params, era=era, protocol_version=version, method="tools/call")
                fast = await dispatcher._call_tool(exchange)
                assert fast is not None, name  # these tools take no Context: the fast path answers them
                kernel = await dispatcher.kernel.call("tools/call", params, 1, version, None, {}, {}, None)
                assert json.loads(fast) == kernel, (name, version)
                compared += 1
        return compared

    assert asyncio.run(compare()) >= 20


def test_message_middleware_wraps_the_handler_first_outermost():
    seen = []

    async def handler(exchange):
        seen.append("handler")
        return "reply"

    def middleware(name):
        async def wrapper(exchange, call_next):
            seen.append(name)
            reply = await call_next(exchange)
            seen.append(f"/{name}")
            return reply

        return wrapper

    assert asyncio.run(chain(handler, [middleware("outer"), middleware("inner")])("exchange")) == "reply"
    assert seen == ["outer", "inner", "handler", "/inner", "/outer"]
