"""The Easy Auth caller (app/identity.py): parsed from the headers App Service sends, trusted only with
WEBSITE_AUTH_ENABLED=True, seen by tools, binding handles and requestState, gating tools by app role."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.identity import MAX_HEADER_BYTES, Caller, CallerError, ToolRoles, caller_from_headers
from tests.app.conftest import META, modern_headers, modern_request
from tests.app.serving import ServerProcess, running_server

OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
ROLE_CLAIM = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
ALICE = "5b5450db-eb26-4c1a-981c-ba1d25f0483d"
BOB = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PRIMES_ROLE = "Primes.Run"
HANDLE_KEYS = "idt:identity-secret-0123456789abcdef"
STATE_KEYS = "idt:identity-state-secret-0123456789abcdef"
EASY_AUTH = {
    "WEBSITE_AUTH_ENABLED": "True",
    "MCP_HANDLE_KEYS": HANDLE_KEYS,
    "MCP_TOOL_ROLES": json.dumps({"compute_primes": [PRIMES_ROLE, "Admin"]}),
    "MCP_PRIMES_LIMIT": "1000",
}


def principal(claims: list[dict], **fields) -> str:
    body = {"auth_typ": "aad", "name_typ": NAME_CLAIM, "role_typ": ROLE_CLAIM, "claims": claims, **fields}
    return base64.b64encode(json.dumps(body).encode()).decode()


def signed_in(oid: str, name: str, *roles: str) -> dict[str, str]:
    """The headers App Service adds for an Entra ID caller (app roles arrive as ``roles`` claims)."""
    claims = [{"typ": OID_CLAIM, "val": oid}, {"typ": NAME_CLAIM, "val": name}]
    claims += [{"typ": "roles", "val": role} for role in roles]
    return {
        "X-MS-CLIENT-PRINCIPAL": principal(claims),
        "X-MS-CLIENT-PRINCIPAL-ID": oid,
        "X-MS-CLIENT-PRINCIPAL-NAME": name,
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }


ALICE_HEADERS = signed_in(ALICE, "alice@contoso.example", PRIMES_ROLE)
BOB_HEADERS = signed_in(BOB, "bob@contoso.example", "Reader")


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


# ------------------------------------------------------------------ parsing


def test_the_caller_is_read_from_app_services_headers():
    caller = caller_from_headers(raw(ALICE_HEADERS))
    assert caller == Caller(
        id=ALICE, name="alice@contoso.example", idp="aad", roles=frozenset({PRIMES_ROLE}), claims=caller.claims
    )
    assert (OID_CLAIM, ALICE) in caller.claims
    assert caller.principal == f"aad:{ALICE}"


def test_roles_of_the_principals_role_type_count_and_the_name_falls_back_to_its_name_claim():
    claims = [
        {"typ": ROLE_CLAIM, "val": "Writer"},
        {"typ": "roles", "val": "Reader"},
        {"typ": NAME_CLAIM, "val": "c@x"},
    ]
    caller = caller_from_headers(raw({"X-MS-CLIENT-PRINCIPAL": principal(claims), "X-MS-CLIENT-PRINCIPAL-ID": "c"}))
    assert caller.roles == {"Writer", "Reader"}
    assert (caller.name, caller.idp) == ("c@x", "aad")


def test_a_request_without_principal_headers_has_no_caller():
    assert caller_from_headers([(b"content-type", b"application/json")]) is None


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-MS-CLIENT-PRINCIPAL": "%%%", "X-MS-CLIENT-PRINCIPAL-ID": ALICE}, "X-MS-CLIENT-PRINCIPAL is not base64"),
        (
            {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"{not json").decode(), "X-MS-CLIENT-PRINCIPAL-ID": ALICE},
            "X-MS-CLIENT-PRINCIPAL is base64, but not of UTF-8 JSON",
        ),
        (
            {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[1]").decode(), "X-MS-CLIENT-PRINCIPAL-ID": ALICE},
            "X-MS-CLIENT-PRINCIPAL is JSON list, expected an object",
        ),
        (
            {
                "X-MS-CLIENT-PRINCIPAL": base64.b64encode(b'{"auth_typ": "aad"}').decode(),
                "X-MS-CLIENT-PRINCIPAL-ID": "x",
            },
            "X-MS-CLIENT-PRINCIPAL has no 'claims' list",
        ),
        (
            {"X-MS-CLIENT-PRINCIPAL": principal([{"typ": "roles"}]), "X-MS-CLIENT-PRINCIPAL-ID": ALICE},
            "X-MS-CLIENT-PRINCIPAL claim 0 is not an object of strings 'typ' and 'val'",
        ),
        (
            {"X-MS-CLIENT-PRINCIPAL": principal([], role_typ=7), "X-MS-CLIENT-PRINCIPAL-ID": ALICE},
            "X-MS-CLIENT-PRINCIPAL field 'role_typ' is int, expected a string",
        ),
        (
            {"X-MS-CLIENT-PRINCIPAL-ID": ALICE},
            "X-MS-CLIENT-PRINCIPAL is missing or empty, though the request carries X-MS-CLIENT-PRINCIPAL-ID",
        ),
        ({"X-MS-CLIENT-PRINCIPAL": principal([])}, "X-MS-CLIENT-PRINCIPAL-ID is missing or empty"),
    ],
)
def test_malformed_principal_headers_are_named(headers, message):
    with pytest.raises(CallerError, match=message):
        caller_from_headers(raw(headers))


def test_repeated_oversized_or_non_utf8_headers_are_refused():
    with pytest.raises(CallerError, match="X-MS-CLIENT-PRINCIPAL-ID appears more than once"):
        caller_from_headers([*raw(ALICE_HEADERS), (b"x-ms-client-principal-id", BOB.encode())])
    with pytest.raises(CallerError, match=f"over the {MAX_HEADER_BYTES}-byte limit"):
        caller_from_headers([(b"x-ms-client-principal", b"A" * (MAX_HEADER_BYTES + 1))])
    with pytest.raises(CallerError, match="X-MS-CLIENT-PRINCIPAL-NAME is not UTF-8"):
        caller_from_headers([*raw(ALICE_HEADERS)[:2], (b"x-ms-client-principal-name", b"\xff")])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_principal_bodies = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"claims": _json}, optional={"role_typ": _json, "name_typ": _json}).map(
        lambda value: json.dumps(value).encode()
    ),
)


@settings(max_examples=300, derandomize=True, database=None)
@given(body=_principal_bodies, encode=st.booleans(), oid=st.text(max_size=8))
def test_any_principal_header_is_a_caller_or_a_named_refusal(body, encode, oid):
    value = base64.b64encode(body) if encode else body
    try:
        caller = caller_from_headers([(b"x-ms-client-principal", value), (b"x-ms-client-principal-id", oid.encode())])
    except CallerError as error:
        assert str(error).startswith("X-MS-CLIENT-PRINCIPAL")
    else:
        assert caller is not None and caller.id == oid.strip()


def test_tool_roles_allow_any_listed_role_and_fail_closed_without_a_caller():
    roles = ToolRoles({"compute_primes": frozenset({PRIMES_ROLE, "Admin"})})
    alice, bob = caller_from_headers(raw(ALICE_HEADERS)), caller_from_headers(raw(BOB_HEADERS))
    assert roles.allows(alice, "compute_primes") and roles.allows(bob, "echo") and roles.allows(None, "echo")
    assert not roles.allows(bob, "compute_primes") and not roles.allows(None, "compute_primes")
    assert roles.hidden_from(alice) == frozenset() and roles.hidden_from(bob) == {"compute_primes"}


# ------------------------------------------------------------ over real HTTP


@pytest.fixture(scope="module")
def easy_auth() -> Iterator[ServerProcess]:
    with running_server(env=EASY_AUTH) as srv:
        yield srv


@pytest.fixture(scope="module")
def second_instance() -> Iterator[ServerProcess]:
    with running_server(env={**EASY_AUTH, "WEBSITE_INSTANCE_ID": "second"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def no_easy_auth() -> Iterator[ServerProcess]:
    with running_server(env={**EASY_AUTH, "WEBSITE_AUTH_ENABLED": None}) as srv:
        yield srv


def post(server: ServerProcess, method: str, params: dict, who: dict[str, str], name: str | None = None):
    headers = {**modern_headers(method, name), **who}
    return httpx.post(server.mcp_url, json=modern_request(method, params), headers=headers, timeout=30)


def call(server: ServerProcess, tool: str, arguments: dict, who: dict[str, str]) -> httpx.Response:
    return post(server, "tools/call", {"name": tool, "arguments": arguments}, who, tool)


def tool_names(server: ServerProcess, who: dict[str, str]) -> tuple[set[str], str]:
    result = post(server, "tools/list", {}, who).json()["result"]
    return {tool["name"] for tool in result["tools"]}, result["cacheScope"]


def test_whoami_names_the_caller(easy_auth):
    answer = call(easy_auth, "whoami", {}, ALICE_HEADERS).json()["result"]
    assert answer["structuredContent"]["caller"] == {"id": ALICE, "name": "alice@contoso.example"}
    assert json.loads(answer["content"][0]["text"])["caller"]["id"] == ALICE
    anonymous = call(easy_auth, "whoami", {}, {}).json()["result"]
    assert anonymous["structuredContent"]["caller"] is None


def test_a_tally_handle_works_for_its_caller_on_another_instance_and_not_for_another_caller(easy_auth, second_instance):
    started = call(easy_auth, "tally", {"add": 5}, ALICE_HEADERS).json()["result"]["structuredContent"]
    handle = started["handle"]
    continued = call(second_instance, "tally", {"add": 2, "handle": handle}, ALICE_HEADERS).json()["result"]
    assert continued["structuredContent"]["total"] == 7
    for who, problem in [
        (BOB_HEADERS, "was minted for another caller"),
        ({}, "was minted for a signed-in caller, and this request has none"),
    ]:
        refused = call(second_instance, "tally", {"add": 1, "handle": handle}, who).json()["result"]
        assert refused["isError"] is True
        assert f"handle rejected (wrong-caller): handle {problem}" in refused["content"][0]["text"]


def test_a_caller_without_the_role_neither_sees_nor_runs_the_tool(easy_auth):
    names, scope = tool_names(easy_auth, BOB_HEADERS)
    assert "compute_primes" not in names and {"whoami", "tally", "echo"} <= names
    assert scope == "private"
    refused = call(easy_auth, "compute_primes", {"limit": 100}, BOB_HEADERS)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == -32602
    assert error["message"] == (
        "Forbidden: tool compute_primes needs the app role Admin or Primes.Run; the caller has Reader"
    )
    assert error["data"] == {"name": "compute_primes", "requiredRoles": ["Admin", PRIMES_ROLE]}
    anonymous = call(easy_auth, "compute_primes", {"limit": 100}, {})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["message"].endswith("no one is signed in")


def test_a_legacy_client_is_held_to_the_roles_too(easy_auth):
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "compute_primes"}}
    headers = {"Accept": "application/json, text/event-stream", **BOB_HEADERS}
    refused = httpx.post(easy_auth.mcp_url, json=body, headers=headers, timeout=30)
    assert refused.status_code == 403 and PRIMES_ROLE in refused.json()["error"]["message"]
    listing = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}
    listed = httpx.post(easy_auth.mcp_url, json=listing, headers=headers, timeout=30).json()["result"]
    assert "compute_primes" not in {tool["name"] for tool in listed["tools"]} and listed["cacheScope"] == "private"


def test_a_caller_with_the_role_sees_and_runs_the_tool(easy_auth):
    names, scope = tool_names(easy_auth, ALICE_HEADERS)
    assert "compute_primes" in names and scope == "private"
    answer = call(easy_auth, "compute_primes", {"limit": 100}, ALICE_HEADERS)
    assert answer.status_code == 200 and answer.json()["result"]["structuredContent"]["prime_count"] == 25


def test_without_easy_auth_principal_headers_change_nothing(no_easy_auth):
    whoami = call(no_easy_auth, "whoami", {}, ALICE_HEADERS).json()["result"]
    assert whoami == call(no_easy_auth, "whoami", {}, {}).json()["result"]
    assert whoami["structuredContent"]["caller"] is None
    # No caller, so the role-listed tool is served to no one: the role in Alice's claimed headers grants nothing.
    assert tool_names(no_easy_auth, ALICE_HEADERS) == tool_names(no_easy_auth, {})
    assert "compute_primes" not in tool_names(no_easy_auth, ALICE_HEADERS)[0]
    claimed = call(no_easy_auth, "compute_primes", {"limit": 100}, ALICE_HEADERS)
    assert (claimed.status_code, claimed.json()) == (
        401,
        call(no_easy_auth, "compute_primes", {"limit": 100}, {}).json(),
    )
    # Handles stay unbound: one minted under Alice's headers opens for anyone, as before.
    handle = call(no_easy_auth, "tally", {}, ALICE_HEADERS).json()["result"]["structuredContent"]["handle"]
    assert (
        call(no_easy_auth, "tally", {"handle": handle}, BOB_HEADERS).json()["result"]["structuredContent"]["total"] == 2
    )
    # Malformed principal headers are not even read.
    garbage = {"X-MS-CLIENT-PRINCIPAL": "%%%", "X-MS-CLIENT-PRINCIPAL-ID": ALICE}
    assert call(no_easy_auth, "whoami", {}, garbage).json()["result"] == whoami


def test_a_malformed_principal_behind_easy_auth_is_a_401_naming_the_header(easy_auth):
    refused = call(easy_auth, "whoami", {}, {"X-MS-CLIENT-PRINCIPAL": "%%%", "X-MS-CLIENT-PRINCIPAL-ID": ALICE})
    assert refused.status_code == 401
    assert refused.json()["error"] == {"code": -32600, "message": "Unauthorized: X-MS-CLIENT-PRINCIPAL is not base64"}
    # Answers from the start-up cache never read the caller, so they do not fail on it either.
    discover = post(easy_auth, "server/discover", {}, {"X-MS-CLIENT-PRINCIPAL": "%%%"})
    assert discover.status_code == 200


# Printable ASCII without surrounding blanks: what an HTTP client can put in a header value at all.
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200).map(str.strip)
_fuzzed_principals = st.one_of(
    _header_text,  # bad base64 (mostly)
    st.binary(max_size=200).map(lambda data: base64.b64encode(data).decode()),  # bad JSON
    _principal_bodies.map(lambda data: base64.b64encode(data).decode()),  # JSON of any shape, claims missing or odd
    st.integers(MAX_HEADER_BYTES - 16, MAX_HEADER_BYTES + 16).map(lambda size: "A" * size),  # huge
)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(value=_fuzzed_principals, oid=st.one_of(st.none(), _header_text), method=st.sampled_from(["whoami", "tally"]))
def test_fuzzed_principal_headers_never_give_a_5xx(easy_auth, value, oid, method):
    who = {"X-MS-CLIENT-PRINCIPAL": value, **({"X-MS-CLIENT-PRINCIPAL-ID": oid} if oid is not None else {})}
    answer = call(easy_auth, method, {}, who)
    assert answer.status_code < 500
    if answer.status_code == 401:
        assert answer.json()["error"]["message"].startswith("Unauthorized: X-MS-CLIENT-PRINCIPAL")
    elif answer.status_code != 431:  # a head over 64 KiB is refused by the HTTP protocol before any of this
        assert answer.status_code == 200 and "result" in answer.json()


# ----------------------------------------------------------- requestState


@pytest.fixture(scope="module")
def two_rounds() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {"WEBSITE_AUTH_ENABLED": "True", "MCP_REQUEST_STATE_KEYS": STATE_KEYS}
    server = ["--server", "tests.app.differential_server:server"]
    with running_server(env=env, args=server) as first, running_server(env=env, args=server) as second:
        yield first, second


def transfer(server: ServerProcess, who: dict[str, str], retry: dict | None = None) -> httpx.Response:
    params = {"name": "transfer", "arguments": {"amount": 7}, **(retry or {})}
    body = modern_request("tools/call", params)
    body["params"]["_meta"] = {**META, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}}
    headers = {**modern_headers("tools/call", "transfer"), **who}
    return httpx.post(server.mcp_url, json=body, headers=headers, timeout=30)


def test_request_state_is_bound_to_the_caller_on_any_instance(two_rounds):
    first, second = two_rounds
    asked = transfer(first, ALICE_HEADERS).json()["result"]
    assert asked["resultType"] == "input_required"
    retry = {
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
        "requestState": asked["requestState"],
    }
    done = transfer(second, ALICE_HEADERS, retry).json()["result"]
    assert done["content"][0]["text"] == "transferred 7 (state pending:7)"
    for who in (BOB_HEADERS, {}):
        refused = transfer(second, who, retry)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "Invalid or expired requestState"


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ('{"compute_primes": []}', "MCP_TOOL_ROLES entry 'compute_primes': [] is not allowed"),
        ('{"compute_prime": ["Admin"]}', "MCP_TOOL_ROLES names tool(s) the server does not have: compute_prime"),
    ],
)
def test_bad_tool_roles_stop_start_up_with_a_message(roles, message):
    with pytest.raises(RuntimeError) as failed, running_server(env={"MCP_TOOL_ROLES": roles}):
        pass
    assert message in str(failed.value)
