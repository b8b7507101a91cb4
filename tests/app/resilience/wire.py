"""MCP 2026-07-28 requests as a well-behaved client sends them, and the oracle for answers.

The resilience tests build a *valid* request here, damage one thing about it,
and predict the answer from the kind of damage alone (the error table of
MCP-2026-07-28.md), never from the server's response. `Expect` is that
prediction and `check_answer` compares a real HTTP response against it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

MODERN = "2026-07-28"
LEGACY = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

# Methods whose target travels in the Mcp-Name header too, and the body param it mirrors.
NAME_PARAM = {"tools/call": "name", "resources/read": "uri", "prompts/get": "name"}

# Every JSON-RPC error code the digest's table allows, and the status each maps to.
TABLE = {
    -32700: 400,  # parse error
    -32600: 400,  # not a valid request
    -32601: 404,  # unknown method
    -32602: 400,  # bad params / unknown tool / missing _meta field / resource not found
    -32020: 400,  # header mismatch or missing header
    -32021: 400,  # missing required client capability
    -32022: 400,  # unsupported protocol version
}

ONE_MIB = 1024 * 1024
_UNKNOWN = object()


def request_meta(version: str = MODERN, **extra: Any) -> dict[str, Any]:
    return {
        PROTOCOL_VERSION_KEY: version,
        CAPABILITIES_KEY: {},
        CLIENT_INFO_KEY: {"name": "resilience-tests", "version": "1.0.0"},
        **extra,
    }


def rpc(method: str, params: Mapping[str, Any] | None = None, *, id: int | str = 1, version: str = MODERN) -> dict:
    """A modern JSON-RPC request with the per-request `_meta` envelope."""
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": {**(params or {}), "_meta": request_meta(version)}}


def is_header_safe(value: str) -> bool:
    """True when `value` may travel in a header as-is (visible ASCII, no edge whitespace)."""
    return value == value.strip() and all(0x20 <= ord(c) <= 0x7E for c in value)


def encode_header_value(value: str, force_base64: bool = False) -> str:
    """The spec's header encoding: plain when safe, else `=?base64?<base64 of UTF-8>?=`."""
    if is_header_safe(value) and not force_base64:
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def headers_for(body: Mapping[str, Any], *, version: str = MODERN) -> dict[str, str]:
    """The headers a modern client sends with `body`."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
        "Mcp-Method": body["method"],
    }
    name_param = NAME_PARAM.get(body["method"])
    if name_param is not None:
        headers["Mcp-Name"] = encode_header_value(body["params"][name_param])
    return headers


def post(client: httpx.Client, url: str, body: Mapping[str, Any], **kwargs: Any) -> httpx.Response:
    return client.post(url, content=json.dumps(body).encode(), headers=headers_for(body), **kwargs)


def call_tool(client: httpx.Client, url: str, name: str, arguments: Mapping[str, Any], *, id: int | str = 1) -> dict:
    """Call a tool; return the JSON-RPC `result` (fails loudly on anything but 200 + result)."""
    response = post(client, url, rpc("tools/call", {"name": name, "arguments": dict(arguments)}, id=id))
    assert response.status_code == 200, f"tools/call {name}: HTTP {response.status_code}: {response.text[:500]}"
    answer = response.json()
    assert "result" in answer, f"tools/call {name}: {answer}"
    return answer["result"]


def structured(result: Mapping[str, Any]) -> Any:
    """The tool's output: `structuredContent` (unwrapping the SDK's {"result": x}) or the JSON text block."""
    if "structuredContent" in result and result["structuredContent"] is not None:
        content = result["structuredContent"]
        if isinstance(content, dict) and set(content) == {"result"}:
            return content["result"]
        return content
    text = "".join(block.get("text", "") for block in result.get("content", []) if block.get("type") == "text")
    try:
        return json.loads(text)
    except ValueError:
        return text


def tool_error_text(result: Mapping[str, Any]) -> str:
    return " ".join(block.get("text", "") for block in result.get("content", []) if block.get("type") == "text")


@dataclass(frozen=True)
class Expect:
    """The answer the spec table gives for a class of request.

    `codes` empty means success (a `result`); otherwise the JSON-RPC error code
    must be one of `codes` and the HTTP status `status`. `tool_error` (for
    success) demands `result.isError` be that value. `alternatives` lists other
    acceptable predictions where the digest itself allows two answers (tool
    argument errors: a 400/-32602 or a 200 `isError` result).
    """

    why: str
    status: int = 200
    codes: frozenset[int] = frozenset()
    tool_error: bool | None = None
    data: Mapping[str, Any] | None = None  # required subset of error.data
    message_mentions: tuple[str, ...] = ()  # words the error text must contain (case-insensitive)
    alternatives: tuple[Expect, ...] = field(default=())

    @classmethod
    def ok(cls, why: str, tool_error: bool | None = False) -> Expect:
        return cls(why=why, tool_error=tool_error)

    @classmethod
    def error(cls, why: str, code: int, status: int | None = None, **kw: Any) -> Expect:
        return cls(why=why, status=TABLE[code] if status is None else status, codes=frozenset({code}), **kw)

    @classmethod
    def accepted(cls, why: str) -> Expect:
        return cls(why=why, status=202)

    def with_alternatives(self, *others: Expect) -> Expect:
        return replace(self, alternatives=(*self.alternatives, *others))


def _body_json(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip().lower() == "application/json", (
        f"expected a JSON body, got Content-Type {content_type!r}: {response.text[:300]!r}"
    )
    try:
        return response.json()
    except ValueError as exc:  # pragma: no cover - message only
        raise AssertionError(f"body is not JSON: {response.text[:300]!r}") from exc


@dataclass(frozen=True)
class IdOneOf:
    """The response id may be any of these (e.g. an invalid request whose id was still readable)."""

    ids: tuple[Any, ...]


def _id_ok(answer_id: Any, request_id: Any) -> bool:
    if request_id is _UNKNOWN:
        return True
    if isinstance(request_id, IdOneOf):
        return any(answer_id == i and type(answer_id) is type(i) for i in request_id.ids)
    return answer_id == request_id and type(answer_id) is type(request_id)


def _mismatch(expect: Expect, response: httpx.Response, request_id: Any) -> str | None:
    """None when `response` is what `expect` predicts, else what differs."""
    if expect.status == 202:
        if response.status_code != 202:
            return f"HTTP {response.status_code}, expected 202"
        if response.content:
            return f"202 with a body: {response.content[:200]!r}"
        return None
    if response.status_code != expect.status:
        return f"HTTP {response.status_code}, expected {expect.status}"
    answer = _body_json(response)
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        return f"not a JSON-RPC response object: {answer!r:.300}"
    if not _id_ok(answer.get("id"), request_id):
        return f"response id {answer.get('id')!r} is not the request's id {request_id!r}"
    if not expect.codes:
        if "result" not in answer:
            return f"expected a result, got {answer!r:.400}"
        result = answer["result"]
        if result.get("resultType") != "complete":
            return f"result without resultType 'complete': {result!r:.300}"
        if expect.tool_error is not None and bool(result.get("isError", False)) != expect.tool_error:
            return f"isError is {result.get('isError')!r}, expected {expect.tool_error}: {result!r:.400}"
        text = tool_error_text(result).lower()
        missing = [w for w in expect.message_mentions if w.lower() not in text]
        if missing:
            return f"tool error text does not mention {missing}: {text[:300]!r}"
        return None
    error = answer.get("error")
    if not isinstance(error, dict):
        return f"expected an error, got {answer!r:.400}"
    if error.get("code") not in expect.codes:
        return f"error code {error.get('code')!r}, expected one of {sorted(expect.codes)}: {error!r:.400}"
    if not isinstance(error.get("message"), str) or not error["message"].strip():
        return f"error without a message: {error!r:.300}"
    for key, value in (expect.data or {}).items():
        if not isinstance(error.get("data"), dict) or error["data"].get(key) != value:
            return f"error.data[{key!r}] should be {value!r}: {error!r:.400}"
    missing = [w for w in expect.message_mentions if w.lower() not in error["message"].lower()]
    if missing:
        return f"error message does not mention {missing}: {error['message']!r}"
    return None


def check_answer(response: httpx.Response, expect: Expect, request_id: Any = _UNKNOWN) -> None:
    """Assert the invariants every answer keeps, then that it is the predicted one."""
    assert response.status_code < 500, f"[{expect.why}] server error {response.status_code}: {response.text[:500]}"
    problems = []
    for candidate in (expect, *expect.alternatives):
        problem = _mismatch(candidate, response, request_id)
        if problem is None:
            return
        problems.append(problem)
    raise AssertionError(f"[{expect.why}] {problems[0]}; response: {response.status_code} {response.text[:500]!r}")


def check_never_broken(response: httpx.Response, *, notification: bool, legacy_possible: bool) -> None:
    """The weakest oracle, for arbitrary input: no 5xx, and any non-202 answer is a JSON-RPC error or result.

    A request that may be read as handshake-era (no modern version in header or `_meta`) may get its
    JSON-RPC error with HTTP 200, as the legacy transport answers.
    """
    assert response.status_code < 500, f"server error {response.status_code}: {response.text[:500]}"
    if response.status_code in (202, 405):
        return
    if notification and 400 <= response.status_code < 500 and not response.content:
        return
    answer = _body_json(response)
    assert isinstance(answer, dict) and answer.get("jsonrpc") == "2.0", answer
    if "error" in answer:
        code = answer["error"].get("code")
        assert isinstance(code, int), answer
        if code in TABLE and response.status_code not in (403, 406, 413, 415):
            allowed = {TABLE[code], 200} if legacy_possible else {TABLE[code]}
            assert response.status_code in allowed, f"code {code} with HTTP {response.status_code}: {answer}"
    else:
        assert response.status_code == 200 and "result" in answer, answer
