"""The fuzzer's catalogue: valid requests, and the single faults with the answer the error table gives each.

Every case starts from a request a correct client would send (any method, any
tool, any argument, any id), then either keeps it valid (with the variations
the spec allows: base64 header forms, header whitespace, extra `_meta`, an
allowed Origin, a charset on Content-Type) or damages exactly one thing (one
``m_*`` strategy per kind of damage, all listed in `MUTATIONS`). The answer is
predicted from the kind of damage alone, by the error table of
MCP-2026-07-28.md (`wire.Expect`), before the request is sent. The properties
that send them are in tests/app/test_fuzz.py.
"""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import event
from hypothesis import strategies as st

from tests.app.resilience.wire import (
    CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LEGACY,
    MODERN,
    NAME_PARAM,
    PROTOCOL_VERSION_KEY,
    Expect,
    IdOneOf,
    encode_header_value,
    headers_for,
    rpc,
)

ALLOWED_ORIGIN = "https://allowed.example"
PRIMES_LIMIT = 20_000  # small, so fuzzed compute_primes calls stay cheap
HANDLE_KEYS = "fuzz-a:fuzz-secret-aaaaaaaaaaaaaaaa,fuzz-b:fuzz-secret-bbbbbbbbbbbbbbbb"
FOREIGN_KEYS = "other:other-secret-cccccccccccccccc"

REMOVED_METHODS = ("initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe")
LIST_METHODS = ("server/discover", "tools/list", "resources/list", "resources/templates/list")


@dataclass
class World:
    """What the fuzzer learns from the running server before it starts (its own tools, facts, handles)."""

    client: httpx.Client
    url: str
    tools: dict[str, dict[str, Any]]
    fact_uris: list[str]
    supported_versions: list[str]
    capabilities: dict[str, Any]
    handles: list[str] = field(default_factory=list)
    foreign_handle: str = ""
    known_methods: frozenset[str] = frozenset()
    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> declared arguments


def _handle_param(schema: dict) -> str | None:
    return next((name for name in schema.get("properties", {}) if "handle" in name.lower()), None)


# ----------------------------------------------------------------------------------------------
# Strategies: valid requests


def request_ids() -> st.SearchStrategy[int | str]:
    return st.one_of(
        st.integers(min_value=-(2**53), max_value=2**53),
        st.text(max_size=40),
    )


def header_safe_text(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.text(alphabet=string.ascii_letters + string.digits + "-_./", min_size=min_size, max_size=max_size)


def any_text(max_size: int = 200) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


def valid_value(prop: dict, draw, w: World, name: str, tool: str) -> Any:
    """A value the tool's own input schema accepts for property `name`."""
    kind = prop.get("type")
    if tool == "lookup_fact" and kind == "string":
        return draw(st.sampled_from([uri.split("://", 1)[1] for uri in w.fact_uris]))
    if "handle" in name.lower():
        return draw(st.sampled_from(w.handles))
    if kind == "integer":
        if tool == "compute_primes":
            return draw(st.integers(min_value=2, max_value=PRIMES_LIMIT))  # its documented range
        return draw(st.integers(min_value=prop.get("minimum", -1000), max_value=prop.get("maximum", 1000)))
    if kind == "number":
        return draw(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "string" or kind is None:
        max_length = prop.get("maxLength", 2000)
        return draw(
            st.text(
                st.characters(blacklist_categories=("Cs",)),
                min_size=prop.get("minLength", 0),
                max_size=min(max_length, 300),
            )
        )
    if kind == "array":
        return []
    if kind == "object":
        return {}
    raise AssertionError(f"tool {tool} property {name} has a type the fuzzer does not know: {prop}")


def valid_arguments(draw, w: World, tool: str) -> dict[str, Any]:
    schema = w.tools[tool]
    required = set(schema.get("required", []))
    arguments = {}
    for name, prop in schema.get("properties", {}).items():
        if name in required or draw(st.booleans()):
            arguments[name] = valid_value(prop, draw, w, name, tool)
    return arguments


@st.composite
def valid_request(draw, w: World) -> dict:
    prompt_methods = ["prompts/list", "prompts/get"] if w.prompts else []
    method = draw(
        st.sampled_from([*LIST_METHODS, "tools/call", "tools/call", "tools/call", "resources/read", *prompt_methods])
    )
    params: dict[str, Any] = {}
    if method == "prompts/get":
        name = draw(st.sampled_from(sorted(w.prompts)))
        keys = [uri.split("://", 1)[1] for uri in w.fact_uris]
        params = {
            "name": name,
            "arguments": {
                a["name"]: draw(st.sampled_from(keys)) if a["name"] == "key" else draw(any_text(30))
                for a in w.prompts[name]
                if a.get("required") or draw(st.booleans())
            },
        }
    elif method == "tools/call":
        # pick_fact needs the elicitation capability (else -32021) and a second round: tests/app/test_protocol.py
        tool = draw(st.sampled_from(sorted(set(w.tools) - {"pick_fact"})))
        params = {"name": tool, "arguments": valid_arguments(draw, w, tool)}
    elif method == "resources/read":
        params = {"uri": draw(st.sampled_from(w.fact_uris))}
    body = rpc(method, params, id=draw(request_ids()))
    meta = body["params"]["_meta"]
    if draw(st.booleans()):
        del meta[CLIENT_INFO_KEY]  # a SHOULD, never a MUST
    if draw(st.booleans()):
        # Unknown (but well-formed) _meta keys and W3C trace context, valid or junk, are ignored.
        meta["com.example/" + draw(header_safe_text())] = draw(st.one_of(st.none(), st.integers(), any_text(30)))
        meta["traceparent"] = draw(
            st.one_of(st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), any_text(60))
        )
    return body


@dataclass
class Case:
    why: str
    body: bytes
    headers: list[tuple[str, str]]
    expect: Expect
    request_id: Any
    http_method: str = "POST"


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def valid_case(draw, w: World) -> Case:
    """A valid request, dressed in the variations the spec allows; expected to succeed."""
    body = draw(valid_request(w))
    headers = headers_for(body)
    why = f"valid {body['method']}"
    variation = draw(st.sampled_from(["none", "base64-name", "charset", "origin", "wildcard-accept"]))
    name_param = NAME_PARAM.get(body["method"])
    if variation == "base64-name" and name_param:
        headers["Mcp-Name"] = encode_header_value(body["params"][name_param], force_base64=True)
    elif variation == "charset":
        headers["Content-Type"] = "application/json; charset=utf-8"
    elif variation == "origin":
        headers["Origin"] = ALLOWED_ORIGIN
    elif variation == "wildcard-accept":
        headers["Accept"] = "*/*"
    expect = Expect.ok(f"{why} ({variation})", tool_error=False if body["method"] == "tools/call" else None)
    return Case(expect.why, encode(body), list(headers.items()), expect, body["id"])


# ----------------------------------------------------------------------------------------------
# Strategies: one fault each, with the answer the spec table gives for it


def mutated_case(draw, w: World) -> Case:
    base = draw(valid_request(w))
    headers = headers_for(base)
    rid = base["id"]
    kind = draw(st.sampled_from(MUTATIONS))
    event(kind.__name__)  # --hypothesis-show-statistics lists how often each class of fault ran
    return kind(draw, w, base, headers, rid)


def _case(expect: Expect, body: Any, headers: dict | list, rid: Any, raw: bool = False) -> Case:
    items = list(headers.items()) if isinstance(headers, dict) else headers
    return Case(expect.why, body if raw else encode(body), items, expect, rid)


def m_truncated(draw, w, base, headers, rid):
    text = encode(base)
    cut = draw(st.integers(min_value=0, max_value=len(text) - 1))
    return _case(Expect.error("truncated JSON", -32700), text[:cut], headers, None, raw=True)


def m_garbage(draw, w, base, headers, rid):
    text = encode(base)
    junk = draw(st.sampled_from([b"}", b"x", b",", b"]", b"\x00", b"{", b"'"]))
    return _case(Expect.error("JSON with trailing garbage", -32700), text + junk, headers, None, raw=True)


def m_invalid_utf8(draw, w, base, headers, rid):
    # JSON text is UTF-8 (RFC 8259); a lone continuation byte inside a string is not.
    text = encode(base).replace(b'"2.0"', b'"2.0\xff"', 1)
    return _case(Expect.error("invalid UTF-8 in the body", -32700), text, headers, None, raw=True)


def m_deep_nesting(draw, w, base, headers, rid):
    depth = draw(st.integers(min_value=2_000, max_value=50_000))
    text = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + b"[" * depth + b"]" * depth + b"}"
    # Either a parser refuses the depth (-32700) or parses it and finds params is not an object.
    expect = Expect.error(
        "deeply nested params",
        -32700,
        alternatives=(Expect.error("deeply nested params", -32602), Expect.error("deeply nested params", -32600)),
    )
    return _case(expect, text, headers, None, raw=True)


def m_not_an_object(draw, w, base, headers, rid):
    value = draw(st.sampled_from([[base], [], 1, "x", None, True, [base, base]]))
    return _case(Expect.error(f"body is {type(value).__name__}, not a request object", -32600), value, headers, None)


def m_jsonrpc_version(draw, w, base, headers, rid):
    body = dict(base)
    if draw(st.booleans()):
        del body["jsonrpc"]
    else:
        body["jsonrpc"] = draw(st.sampled_from(["1.0", "2", 2.0, 2, None, "2.0 "]))
    # The id is still readable, so echoing it (or null, per JSON-RPC's letter) are both right.
    return _case(
        Expect.error(f"jsonrpc member {body.get('jsonrpc', '<absent>')!r}", -32600), body, headers, IdOneOf((rid, None))
    )


def m_bad_id(draw, w, base, headers, rid):
    body = dict(base)
    body["id"] = draw(st.sampled_from([None, True, False, 1.5, [], {}, {"a": 1}, [1]]))
    return _case(Expect.error(f"id {body['id']!r} is not a string or integer", -32600), body, headers, None)


def m_bad_method_member(draw, w, base, headers, rid):
    body = dict(base)
    if draw(st.booleans()):
        del body["method"]
    else:
        body["method"] = draw(st.sampled_from([1, None, [], {}, True]))
    return _case(
        Expect.error(f"method member {body.get('method', '<absent>')!r}", -32600), body, headers, IdOneOf((rid, None))
    )


def m_unknown_method(draw, w, base, headers, rid):
    method = draw(
        st.one_of(
            header_safe_text().filter(lambda m: m not in w.known_methods and not m.startswith("notifications/")),
            st.sampled_from(REMOVED_METHODS),
            st.sampled_from(
                [m for m in ("prompts/list", "completion/complete") if m not in w.known_methods] or ["x/y"]
            ),
            st.sampled_from([m.upper() for m in sorted(w.known_methods)]),
        )
    )
    body = {**base, "method": method}
    body["params"] = {"_meta": base["params"]["_meta"]}
    if method == "completion/complete":
        # A spec method is checked against its params before the server is asked for a handler (the SDK kernel's
        # order), so the unserved method is only what is left once its params are well formed.
        body["params"] |= {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}}
    headers = {**headers, "Mcp-Method": method}
    headers.pop("Mcp-Name", None)
    return _case(Expect.error(f"unknown method {method!r}", -32601), body, headers, rid)


def m_method_header(draw, w, base, headers, rid):
    choice = draw(st.sampled_from(["missing", "other", "case", "duplicate"]))
    headers = dict(headers)
    if choice == "missing":
        del headers["Mcp-Method"]
        items = list(headers.items())
    elif choice == "other":
        headers["Mcp-Method"] = draw(header_safe_text().filter(lambda m: m != base["method"]))
        items = list(headers.items())
    elif choice == "case":
        headers["Mcp-Method"] = base["method"].upper()
        items = list(headers.items())
    else:
        other = draw(st.sampled_from([m for m in LIST_METHODS if m != base["method"]]))
        items = [*headers.items(), ("Mcp-Method", other)]
    return _case(Expect.error(f"Mcp-Method header {choice}", -32020), base, items, rid)


def m_duplicated_header(draw, w, base, headers, rid):
    """A routing header sent twice with different values: which one counts would be the server's guess."""
    if base["method"] not in NAME_PARAM:
        base = rpc("tools/call", {"name": "whoami", "arguments": {}}, id=rid)
        headers = headers_for(base)
    name = draw(st.sampled_from(["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"]))
    other = draw(header_safe_text().filter(lambda v: v != headers[name]))
    items = list(headers.items())
    items.insert(draw(st.integers(min_value=0, max_value=len(items))), (name, other))
    return _case(Expect.error(f"{name} header twice", -32020), base, items, rid)


def m_name_header(draw, w, base, headers, rid):
    if base["method"] not in NAME_PARAM:
        base = rpc("tools/call", {"name": "whoami", "arguments": {}}, id=rid)
        headers = headers_for(base)
    value = base["params"][NAME_PARAM[base["method"]]]
    headers = dict(headers)
    choice = draw(
        st.sampled_from(
            ["missing", "other", "other-base64", "bad-base64-chars", "bad-base64-padding", "base64-not-utf8", "case"]
        )
    )
    if choice == "missing":
        del headers["Mcp-Name"]
    elif choice == "other":
        headers["Mcp-Name"] = draw(header_safe_text().filter(lambda v: v != value))
    elif choice == "other-base64":
        headers["Mcp-Name"] = encode_header_value(draw(any_text(30).filter(lambda v: v != value)), force_base64=True)
    elif choice == "bad-base64-chars":
        headers["Mcp-Name"] = "=?base64?" + base64.b64encode(value.encode()).decode()[:-1] + "!?="
    elif choice == "bad-base64-padding":
        encoded = base64.b64encode((value + "x").encode()).decode()
        stripped = encoded.rstrip("=")
        headers["Mcp-Name"] = "=?base64?" + (stripped if stripped != encoded else encoded + "=") + "?="
    elif choice == "base64-not-utf8":
        headers["Mcp-Name"] = "=?base64?" + base64.b64encode(b"\xff\xfe" + value.encode()).decode() + "?="
    else:
        if value.upper() == value:
            headers["Mcp-Name"] = value + "X"
        else:
            headers["Mcp-Name"] = encode_header_value(value.upper())
    return _case(Expect.error(f"Mcp-Name header {choice}", -32020), base, headers, rid)


def m_version_header(draw, w, base, headers, rid):
    headers = dict(headers)
    choice = draw(st.sampled_from(["missing", "other-supported", "unknown", "whitespace-inside"]))
    if choice == "missing":
        del headers["MCP-Protocol-Version"]
    elif choice == "other-supported":
        headers["MCP-Protocol-Version"] = draw(st.sampled_from(LEGACY))
    elif choice == "unknown":
        headers["MCP-Protocol-Version"] = draw(header_safe_text().filter(lambda v: v != MODERN))
    else:
        headers["MCP-Protocol-Version"] = MODERN.replace("-", " - ", 1)
    return _case(Expect.error(f"MCP-Protocol-Version header {choice} vs _meta {MODERN}", -32020), base, headers, rid)


def m_meta(draw, w, base, headers, rid):
    body = json.loads(json.dumps(base))
    params = body["params"]
    choice = draw(
        st.sampled_from(
            [
                "no-meta",
                "no-version",
                "no-capabilities",
                "meta-not-object",
                "capabilities-not-object",
                "client-info-not-object",
                "no-params",
            ]
        )
    )
    if choice == "no-meta":
        del params["_meta"]
    elif choice == "no-version":
        del params["_meta"][PROTOCOL_VERSION_KEY]
    elif choice == "no-capabilities":
        del params["_meta"][CAPABILITIES_KEY]
    elif choice == "meta-not-object":
        params["_meta"] = draw(st.sampled_from([[], "x", 1, None, True]))
    elif choice == "capabilities-not-object":
        params["_meta"][CAPABILITIES_KEY] = draw(st.sampled_from([[], "x", 1, None, True]))
    elif choice == "client-info-not-object":
        params["_meta"][CLIENT_INFO_KEY] = draw(st.sampled_from([[], "x", 1, True]))
    else:
        body = {k: v for k, v in body.items() if k != "params"}
        headers = {k: v for k, v in headers.items() if k != "Mcp-Name"}
    return _case(Expect.error(f"_meta fault: {choice}", -32602), body, headers, rid)


def m_params_not_object(draw, w, base, headers, rid):
    method = draw(st.sampled_from(LIST_METHODS))
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": draw(st.sampled_from([[], [1], "x", 3, True]))}
    headers = headers_for({"method": method})
    # JSON-RPC calls a non-structured params an invalid request; MCP calls it bad params. Both are 400.
    expect = Expect.error("params is not an object", -32602, alternatives=(Expect.error("params", -32600),))
    return _case(expect, body, headers, rid)


def m_unsupported_version(draw, w, base, headers, rid):
    version = draw(
        st.one_of(
            st.sampled_from(["v999.0.0", "1900-01-01", "2026-07-29", "2027-01-01", "2026-7-28"]),
            header_safe_text(),
        ).filter(lambda v: v not in w.supported_versions and v != MODERN and v not in LEGACY)
    )
    body = json.loads(json.dumps(base))
    body["params"]["_meta"][PROTOCOL_VERSION_KEY] = version
    headers = {**headers, "MCP-Protocol-Version": version}
    return _case(
        Expect.error(f"unsupported version {version!r}", -32022, data={"requested": version}), body, headers, rid
    )


def m_unknown_tool(draw, w, base, headers, rid):
    method = draw(st.sampled_from(["tools/call", "prompts/get"] if w.prompts else ["tools/call"]))
    known = w.tools if method == "tools/call" else w.prompts
    name = draw(st.one_of(header_safe_text(), any_text(40)).filter(lambda n: n not in known))
    body = rpc(method, {"name": name, "arguments": {}}, id=rid)
    return _case(Expect.error(f"{method}: unknown name {name!r}", -32602), body, headers_for(body), rid)


def m_missing_capability(draw, w, base, headers, rid):
    if "pick_fact" not in w.tools:  # the one tool that needs a client capability (elicitation.form)
        return m_unknown_tool(draw, w, base, headers, rid)
    capabilities = draw(st.sampled_from([{}, {"sampling": {}}, {"elicitation": {"url": {}}}, {"roots": {}}]))
    body = rpc("tools/call", {"name": "pick_fact", "arguments": {}}, id=rid)
    body["params"]["_meta"][CAPABILITIES_KEY] = capabilities
    expect = Expect.error(f"pick_fact with capabilities {capabilities}", -32021)
    return _case(expect, body, headers_for(body), rid)


def _tool_argument_error(why: str, mentions: tuple[str, ...] = ()) -> Expect:
    # The digest allows both: a 200 result with isError (preferred by the spec for tool input) or 400/-32602.
    return Expect(
        why=why,
        tool_error=True,
        message_mentions=mentions,
        alternatives=(Expect.error(why, -32602, message_mentions=mentions),),
    )


def _wrong_type_value(prop: dict, draw) -> Any:
    kind = prop.get("type")
    wrong = {
        "integer": st.one_of(
            st.text(alphabet="abc", min_size=1, max_size=5), st.just([1]), st.just({}), st.just(1.5), st.none()
        ),
        "number": st.one_of(st.text(alphabet="abc", min_size=1, max_size=5), st.just([1]), st.none()),
        "string": st.one_of(st.just([]), st.just({"a": 1}), st.none(), st.just(True)),
        "boolean": st.one_of(st.just([]), st.just({}), st.just("maybe")),
    }.get(kind, st.just(object))
    return draw(wrong)


def m_tool_arguments(draw, w, base, headers, rid):
    candidates = [t for t, s in sorted(w.tools.items()) if s.get("properties")]
    tool = draw(st.sampled_from(candidates))
    schema = w.tools[tool]
    arguments = valid_arguments(draw, w, tool)
    required = [name for name in schema.get("required", [])]
    choices = ["wrong-type"] + (["missing-required"] if required else [])
    choice = draw(st.sampled_from(choices))
    if choice == "missing-required":
        victim = draw(st.sampled_from(required))
        del arguments[victim]
    else:
        victim = draw(st.sampled_from(sorted(schema["properties"])))
        arguments[victim] = _wrong_type_value(schema["properties"][victim], draw)
        if arguments[victim] is object:
            arguments[victim] = [[["nested"]]]
    body = rpc("tools/call", {"name": tool, "arguments": arguments}, id=rid)
    return _case(_tool_argument_error(f"{tool}: {choice} {victim}"), body, headers_for(body), rid)


def m_arguments_not_object(draw, w, base, headers, rid):
    tool = draw(st.sampled_from(sorted(w.tools)))
    body = rpc("tools/call", {"name": tool, "arguments": draw(st.sampled_from([[], [1, 2], "x", 7, True]))}, id=rid)
    expect = Expect.error(
        "arguments is not an object", -32602, alternatives=(Expect(why="arguments is not an object", tool_error=True),)
    )
    return _case(expect, body, headers_for(body), rid)


def m_primes_bound(draw, w, base, headers, rid):
    limit = draw(st.integers(min_value=PRIMES_LIMIT + 1, max_value=10**12))
    param = next(n for n, p in w.tools["compute_primes"]["properties"].items() if p.get("type") == "integer")
    body = rpc("tools/call", {"name": "compute_primes", "arguments": {param: limit}}, id=rid)
    return _case(
        _tool_argument_error(f"compute_primes {param}={limit} over the bound", (str(PRIMES_LIMIT),)),
        body,
        headers_for(body),
        rid,
    )


def m_handle(draw, w, base, headers, rid):
    schema = w.tools["tally"]
    param = _handle_param(schema)
    good = draw(st.sampled_from(w.handles))
    kid_part, payload, signature = good.split(".")[1:]
    choice = draw(
        st.sampled_from(
            [
                "random",
                "bitflip-signature",
                "bitflip-payload",
                "truncated",
                "foreign-key",
                "empty",
                "huge",
                "extra-part",
                "swapped-payload",
            ]
        )
    )
    if choice == "random":
        handle = draw(any_text(80))
    elif choice == "bitflip-signature":
        i = draw(st.integers(min_value=0, max_value=len(signature) - 2))
        handle = f"v1.{kid_part}.{payload}.{signature[:i]}{'A' if signature[i] != 'A' else 'B'}{signature[i + 1 :]}"
    elif choice == "bitflip-payload":
        i = draw(st.integers(min_value=0, max_value=len(payload) - 2))
        handle = f"v1.{kid_part}.{payload[:i]}{'A' if payload[i] != 'A' else 'B'}{payload[i + 1 :]}.{signature}"
    elif choice == "truncated":
        handle = good[: draw(st.integers(min_value=0, max_value=len(good) - 1))]
    elif choice == "foreign-key":
        handle = w.foreign_handle
    elif choice == "empty":
        handle = ""
    elif choice == "huge":
        handle = good + "A" * draw(st.integers(min_value=5_000, max_value=200_000))
    elif choice == "extra-part":
        handle = good + ".x"
    else:
        other = w.handles[1] if good == w.handles[0] else w.handles[0]
        handle = f"v1.{kid_part}.{other.split('.')[2]}.{signature}"
        if handle == good or handle == other:
            handle = good[:-2]
    arguments = valid_arguments(draw, w, "tally")
    arguments[param] = handle
    body = rpc("tools/call", {"name": "tally", "arguments": arguments}, id=rid)
    if choice == "empty":
        # An empty handle may reasonably mean "start a new tally"; either that or a clear handle error.
        expect = Expect(why="empty handle", tool_error=None)
    else:
        expect = _tool_argument_error(f"handle {choice}", ("handle",))
    return _case(expect, body, headers_for(body), rid)


def m_resource_not_found(draw, w, base, headers, rid):
    uri = draw(
        st.one_of(
            header_safe_text().map(lambda k: "fact://" + k),
            st.sampled_from(["", "fact://", "http://example.com/x", "file:///etc/passwd", "fact:///../x"]),
            any_text(40).map(lambda k: "fact://" + k),
        ).filter(lambda u: u not in w.fact_uris)
    )
    body = rpc("resources/read", {"uri": uri}, id=rid)
    return _case(Expect.error(f"resource {uri!r} not found", -32602, data={"uri": uri}), body, headers_for(body), rid)


def _http_layer(rid: Any) -> IdOneOf:
    # Refused at the HTTP layer, before the body is read: the id may be unknown to the server (null).
    return IdOneOf((rid, None))


def m_content_type(draw, w, base, headers, rid):
    headers = dict(headers)
    value = draw(
        st.sampled_from(
            [
                None,
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "application/jsonx",
                "text/json",
                "",
                "application/xml",
            ]
        )
    )
    if value is None:
        # A body without Content-Type may be read as JSON (lenient) or refused with 415; both are clean.
        del headers["Content-Type"]
        return _case(
            Expect.ok("no Content-Type", tool_error=None).with_alternatives(
                Expect.error("no Content-Type", -32600, status=415)
            ),
            base,
            headers,
            IdOneOf((rid, None)),
        )
    headers["Content-Type"] = value
    return _case(Expect.error(f"Content-Type {value!r}", -32600, status=415), base, headers, _http_layer(rid))


def m_accept(draw, w, base, headers, rid):
    value = draw(st.sampled_from(["text/html", "image/png", "text/plain, text/html", "application/xml"]))
    return _case(
        Expect.error(f"Accept {value!r}", -32600, status=406), base, {**headers, "Accept": value}, _http_layer(rid)
    )


def m_origin(draw, w, base, headers, rid):
    origin = draw(
        st.one_of(
            st.sampled_from(
                [
                    "https://evil.example",
                    "null",
                    "http://allowed.example",
                    "https://allowed.example:444",
                    "https://allowed.example.evil",
                    "file://",
                ]
            ),
            header_safe_text().map(lambda h: "https://" + h),
        ).filter(lambda o: o.rstrip("/").lower() != ALLOWED_ORIGIN)
    )
    return _case(
        Expect.error(
            f"Origin {origin!r}",
            -32600,
            status=403,
            alternatives=(Expect(why="origin", status=403, codes=frozenset({-32000, -32001, -32600})),),
        ),
        base,
        {**headers, "Origin": origin},
        _http_layer(rid),
    )


MUTATIONS = [
    m_truncated,
    m_garbage,
    m_invalid_utf8,
    m_deep_nesting,
    m_not_an_object,
    m_jsonrpc_version,
    m_bad_id,
    m_bad_method_member,
    m_unknown_method,
    m_method_header,
    m_duplicated_header,
    m_name_header,
    m_version_header,
    m_meta,
    m_params_not_object,
    m_unsupported_version,
    m_unknown_tool,
    m_missing_capability,
    m_tool_arguments,
    m_arguments_not_object,
    m_primes_bound,
    m_handle,
    m_resource_not_found,
    m_content_type,
    m_accept,
    m_origin,
]


def send(w: World, case: Case) -> httpx.Response:
    return w.client.request(case.http_method, w.url, content=case.body, headers=case.headers)
