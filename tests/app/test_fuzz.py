"""Property-based fuzzing of POST /mcp over real HTTP against one `python -m app` process.

The cases come from the catalogue in tests/app/resilience/mutations.py: a
request a correct client would send, kept valid or damaged in exactly one
thing, with the answer the error table of MCP-2026-07-28.md gives predicted
before the request is sent; the server's response is then held to it. On
top, every answer keeps the invariants: never a 5xx, a request always gets a
JSON-RPC body with its own id, a notification gets 202.

Hypothesis runs derandomized with no example database, so CI replays the same
cases on every run; a failure prints the case (its `why` names the damage).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.resilience import rawhttp
from tests.app.resilience.mutations import (
    ALLOWED_ORIGIN,
    FOREIGN_KEYS,
    HANDLE_KEYS,
    PRIMES_LIMIT,
    REMOVED_METHODS,
    World,
    any_text,
    encode,
    header_safe_text,
    mutated_case,
    request_ids,
    send,
    valid_case,
)
from tests.app.resilience.wire import (
    CAPABILITIES_KEY,
    LEGACY,
    MODERN,
    ONE_MIB,
    PROTOCOL_VERSION_KEY,
    Expect,
    check_answer,
    check_never_broken,
    headers_for,
    rpc,
)
from tests.app.serving import running_server

# Hunting locally: RESILIENCE_FUZZ_SCALE=10 runs ten times the cases, RESILIENCE_FUZZ_RANDOM=1 draws new ones
# each run (with pytest's --hypothesis-seed=N to replay one). CI keeps the fixed, derandomized default.
SCALE = float(os.environ.get("RESILIENCE_FUZZ_SCALE", "1"))
FUZZ = settings(
    deadline=None,
    derandomize=os.environ.get("RESILIENCE_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)


def _post_ok(client: httpx.Client, url: str, body: dict) -> dict:
    response = client.post(url, content=json.dumps(body).encode(), headers=headers_for(body))
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _mint_handle(client: httpx.Client, url: str, tools: dict, add: int) -> str:
    schema = tools["tally"]
    arguments = {
        name: add for name, prop in schema.get("properties", {}).items() if prop.get("type") in ("integer", "number")
    }
    result = _post_ok(client, url, rpc("tools/call", {"name": "tally", "arguments": arguments}))
    assert not result.get("isError"), result
    text = json.dumps(result)
    import re

    match = re.search(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", text)
    assert match, f"tally returned no handle: {result}"
    return match.group(0)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    env = {
        "MCP_HANDLE_KEYS": HANDLE_KEYS,
        "MCP_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "MCP_PRIMES_LIMIT": str(PRIMES_LIMIT),
    }
    with (
        running_server(env=env) as server,
        running_server(env={"MCP_HANDLE_KEYS": FOREIGN_KEYS}) as foreign,
        httpx.Client(timeout=30, limits=httpx.Limits(max_connections=4, max_keepalive_connections=4)) as client,
    ):
        url = server.mcp_url
        discover = _post_ok(client, url, rpc("server/discover"))
        tools = {tool["name"]: tool["inputSchema"] for tool in _post_ok(client, url, rpc("tools/list"))["tools"]}
        facts = [r["uri"] for r in _post_ok(client, url, rpc("resources/list"))["resources"]]
        assert {"whoami", "echo", "lookup_fact", "compute_primes", "tally"} <= set(tools), sorted(tools)
        assert facts, "the server lists no fact resources"
        known = {"server/discover", "tools/list", "tools/call", "resources/list", "resources/read"}
        known |= {"resources/templates/list"}
        if "prompts" in discover["capabilities"]:
            known |= {"prompts/list", "prompts/get"}
        if "completions" in discover["capabilities"]:
            known |= {"completion/complete"}
        w = World(
            client=client,
            url=url,
            tools=tools,
            fact_uris=facts,
            supported_versions=list(discover["supportedVersions"]),
            capabilities=discover["capabilities"],
            known_methods=frozenset(known),
        )
        if "prompts" in discover["capabilities"]:
            listed = _post_ok(client, url, rpc("prompts/list"))["prompts"]
            w.prompts = {prompt["name"]: prompt.get("arguments", []) for prompt in listed}
        w.handles = [_mint_handle(client, url, tools, add) for add in (1, 2)]
        with httpx.Client(timeout=30) as other:
            w.foreign_handle = _mint_handle(other, foreign.mcp_url, tools, 1)
        yield w
        assert server.process.poll() is None, f"the server died during fuzzing:\n{server.output()[-3000:]}"


# ----------------------------------------------------------------------------------------------
# Properties


@settings(FUZZ, max_examples=int(1000 * SCALE))
@given(data=st.data())
def test_valid_requests_for_every_method_succeed(world: World, data: st.DataObject) -> None:
    case = valid_case(data.draw, world)
    check_answer(send(world, case), case.expect, case.request_id)


@settings(FUZZ, max_examples=int(1500 * SCALE))
@given(data=st.data())
def test_each_single_fault_gets_the_error_the_table_gives(world: World, data: st.DataObject) -> None:
    case = mutated_case(data.draw, world)
    response = send(world, case)
    check_answer(response, case.expect, case.request_id)
    if case.expect.codes == {-32021}:
        required = response.json()["error"].get("data", {}).get("requiredCapabilities")
        assert isinstance(required, dict) and "elicitation" in required, response.text


@st.composite
def notifications(draw) -> dict:
    method = draw(st.one_of(st.just("notifications/cancelled"), header_safe_text().map(lambda m: "notifications/" + m)))
    params: dict[str, Any] = {}
    if method == "notifications/cancelled":
        params = {"requestId": draw(request_ids())}
        if draw(st.booleans()):
            params["reason"] = draw(any_text(40))
    if draw(st.booleans()):
        params["_meta"] = {PROTOCOL_VERSION_KEY: MODERN}
    return {"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})}


@settings(FUZZ, max_examples=int(300 * SCALE))
@given(note=notifications())
def test_notifications_are_accepted_with_202_and_no_body(world: World, note: dict) -> None:
    headers = {**headers_for(note)}
    response = world.client.post(world.url, content=encode(note), headers=headers)
    check_answer(response, Expect.accepted(f"notification {note['method']}"))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text(20))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text(10), inner, max_size=4)),
        max_leaves=12,
    )


@st.composite
def noise(draw, w_methods: tuple[str, ...]) -> tuple[bytes, dict[str, str], bool]:
    """Arbitrary bodies and headers: random bytes, random JSON, JSON-RPC-shaped objects with random members."""
    shape = draw(st.sampled_from(["bytes", "json", "rpc"]))
    is_notification = False
    if shape == "bytes":
        body = draw(st.binary(max_size=300))
    elif shape == "json":
        body = encode(draw(json_values()))
    else:
        message = {
            "jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0"])),
            "method": draw(st.one_of(st.sampled_from(w_methods), any_text(20))),
            "params": draw(
                st.one_of(
                    json_values(),
                    st.fixed_dictionaries(
                        {
                            "_meta": st.one_of(
                                json_values(),
                                st.fixed_dictionaries(
                                    {
                                        PROTOCOL_VERSION_KEY: st.sampled_from([MODERN, *LEGACY, "x"]),
                                        CAPABILITIES_KEY: json_values(),
                                    }
                                ),
                            )
                        },
                        optional={"name": any_text(20), "uri": any_text(20), "arguments": json_values()},
                    ),
                )
            ),
        }
        if draw(st.booleans()):
            message["id"] = draw(st.one_of(request_ids(), json_values()))
        else:
            is_notification = True
        body = encode(message)
    header_values = st.one_of(
        header_safe_text(0, 30), st.sampled_from([MODERN, *LEGACY, "=?base64?=?=", "=?base64?AAAA?=", "tools/call"])
    )
    headers = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "MCP-Protocol-Version",
                    "Mcp-Method",
                    "Mcp-Name",
                    "Content-Type",
                    "Accept",
                    "Origin",
                    "Mcp-Session-Id",
                    "Last-Event-ID",
                ]
            ),
            header_values,
            max_size=6,
        )
    )
    return body, headers, is_notification


@settings(FUZZ, max_examples=int(400 * SCALE))
@given(data=st.data())
def test_arbitrary_input_never_breaks_the_server(world: World, data: st.DataObject) -> None:
    methods = (*sorted(world.known_methods), *REMOVED_METHODS, "notifications/cancelled")
    body, headers, is_notification = data.draw(noise(methods))
    response = world.client.post(world.url, content=body, headers=headers)
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    try:
        meta_version = message["params"]["_meta"][PROTOCOL_VERSION_KEY]
    except (KeyError, TypeError, IndexError):
        meta_version = None
    header_version = headers.get("MCP-Protocol-Version")
    # `initialize` is handshake-era by definition: unless a modern version names it, any header it carries is
    # not a version to negotiate (clients send none on it), so it is answered the legacy way.
    is_initialize = isinstance(message, dict) and message.get("method") == "initialize"
    legacy_possible = meta_version is None and (
        header_version in (None, *LEGACY) or (is_initialize and header_version != MODERN)
    )
    check_never_broken(response, notification=is_notification, legacy_possible=legacy_possible)


@settings(FUZZ, max_examples=int(20 * SCALE))
@given(http_method=st.sampled_from(["GET", "DELETE", "PUT", "PATCH"]), with_body=st.booleans())
def test_other_http_methods_get_405_allow_post(world: World, http_method: str, with_body: bool) -> None:
    headers = {"MCP-Protocol-Version": MODERN, "Accept": "application/json, text/event-stream"}
    content = encode(rpc("tools/list")) if with_body and http_method != "GET" else None
    response = world.client.request(http_method, world.url, headers=headers, content=content)
    assert response.status_code == 405, response.text
    assert "POST" in response.headers.get("allow", ""), response.headers


# ----------------------------------------------------------------------------------------------
# Sizes: the 1 MiB body limit's exact boundary, sent whole or streamed (how a refusal happens on each
# serving path: test_http_protocol.py; the request head limit: test_transport.py)


def padded_tools_list(total_size: int, rid: int = 7) -> bytes:
    """A valid tools/list request of exactly `total_size` bytes (padding in an unknown `_meta` key)."""
    body = rpc("tools/list", id=rid)
    body["params"]["_meta"]["com.example/pad"] = ""
    empty = len(encode(body))
    body["params"]["_meta"]["com.example/pad"] = "x" * (total_size - empty)
    raw = encode(body)
    assert len(raw) == total_size
    return raw


@settings(FUZZ, max_examples=int(40 * SCALE))
@given(
    size=st.one_of(
        st.integers(min_value=ONE_MIB - 64 * 1024, max_value=ONE_MIB),
        st.integers(min_value=ONE_MIB + 1, max_value=3 * ONE_MIB),
        st.sampled_from([ONE_MIB, ONE_MIB + 1]),
    ),
    chunked=st.booleans(),
)
def test_bodies_over_one_mib_get_413_and_bodies_up_to_it_are_served(world: World, size: int, chunked: bool) -> None:
    raw = padded_tools_list(size)
    headers = headers_for(rpc("tools/list"))
    if chunked:
        # No Content-Length: the limit must hold while streaming, not only for an announced length.
        content: Any = (raw[i : i + 65536] for i in range(0, len(raw), 65536))
    else:
        content = raw
    try:
        response = world.client.post(world.url, content=content, headers=headers)
    except httpx.RemoteProtocolError:
        # A server may answer 413 and close before the client finished sending; httpx then cannot read
        # the response. Only acceptable for oversized bodies; a fresh request proves the server is fine.
        assert size > ONE_MIB, f"{size}-byte body: connection dropped"
        check_answer(
            world.client.post(world.url, content=encode(rpc("tools/list")), headers=headers),
            Expect.ok("tools/list after an oversized body"),
        )
        return
    if size > ONE_MIB:
        check_answer(response, Expect(why=f"{size}-byte body", status=413, codes=frozenset({-32600})))
    else:
        check_answer(response, Expect.ok(f"{size}-byte body"), 7)


@pytest.mark.parametrize("padding", [(" ", "  "), ("\t", ""), ("", " \t ")])
def test_whitespace_around_routing_header_values_is_not_part_of_them(world: World, padding: tuple[str, str]) -> None:
    """RFC 9110 5.5: optional whitespace around a field value is excluded (httpx cannot send it; a socket can)."""
    body = rpc("tools/call", {"name": "whoami", "arguments": {}}, id="ows")
    headers = headers_for(body)
    before, after = padding
    headers["Mcp-Name"] = before + headers["Mcp-Name"] + after
    headers["Mcp-Method"] = before + headers["Mcp-Method"] + after
    raw = encode(body)
    with rawhttp.connect(world.url) as sock:
        sock.sendall(rawhttp.request_head(world.url, headers, len(raw)) + raw)
        status, _, answer = rawhttp.read_response(sock, timeout=10)
    assert status == 200, answer
    assert json.loads(answer)["result"]["isError"] is False


# ----------------------------------------------------------------------------------------------
# Handshake-era clients: served statelessly, never given a session


@st.composite
def legacy_requests(draw, w_tools: tuple[str, ...]) -> tuple[dict, dict[str, str], Expect]:
    version = draw(st.sampled_from(LEGACY[:3]))
    rid = draw(request_ids())
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if draw(st.booleans()):
        headers["MCP-Protocol-Version"] = version  # sent after initialize; absent on initialize itself
    method = draw(st.sampled_from(["initialize", "tools/list", "tools/call", "resources/list", "ping", "x/unknown"]))
    params: dict[str, Any] = {}
    if method == "initialize":
        headers.pop("MCP-Protocol-Version", None)
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}
    elif method == "tools/call":
        params = {"name": "whoami", "arguments": {}}
    body = {"jsonrpc": "2.0", "id": rid, "method": method, **({"params": params} if params else {})}
    if method == "x/unknown":
        # Handshake-era transports answer JSON-RPC errors with HTTP 200 (a 404 means "session gone" to them).
        expect = Expect.error("legacy unknown method", -32601, status=200)
    else:
        expect = Expect(why=f"legacy {method}")
    return body, headers, expect


@settings(FUZZ, max_examples=int(200 * SCALE))
@given(data=st.data())
def test_legacy_requests_are_served_without_a_session(world: World, data: st.DataObject) -> None:
    body, headers, expect = data.draw(legacy_requests(tuple(world.tools)))
    response = world.client.post(world.url, content=encode(body), headers=headers)
    assert "mcp-session-id" not in response.headers, response.headers
    assert response.status_code == expect.status, response.text
    answer = response.json()
    assert answer["id"] == body["id"] and type(answer["id"]) is type(body["id"]), answer
    if expect.codes:
        assert answer["error"]["code"] in expect.codes, answer
    elif body["method"] == "initialize":
        assert answer["result"]["protocolVersion"] == body["params"]["protocolVersion"], answer
        assert "tools" in answer["result"]["capabilities"], answer
    else:
        assert "result" in answer and not answer["result"].get("isError"), answer


@pytest.mark.parametrize("header", [None, "2025-11-25"], ids=["no-version-header", "legacy-version-header"])
def test_initialize_in_a_modern_envelope_is_judged_as_modern(world: World, header: str | None) -> None:
    """A `_meta` protocol version makes a request modern (found by the random fuzz: it was answered as legacy,
    with the handshake-era HTTP 200 for its error). Modern, its version header is missing or disagrees: -32020."""
    body = rpc("initialize", id="init")
    headers = {k: v for k, v in headers_for(body).items() if k != "MCP-Protocol-Version"}
    if header is not None:
        headers["MCP-Protocol-Version"] = header
    response = world.client.post(world.url, content=encode(body), headers=headers)
    check_answer(response, Expect.error("initialize in a modern envelope", -32020), "init")
