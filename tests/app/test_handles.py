"""Handles: signed, expiring, self-contained; distinct errors; valid across processes sharing a key ring."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import mcp
import pytest

from app.handles import (
    ExpiredHandle,
    ForgedHandle,
    HandleCodec,
    KeyRing,
    KeyRingError,
    MalformedHandle,
    UnknownHandleKey,
    WrongCaller,
)
from app.identity import Caller
from tests.app.serving import running_server

RING = KeyRing.parse("new:new-secret-0123456789,old:old-secret-0123456789")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_minted_handle_opens_to_its_state():
    codec = HandleCodec(RING, ttl_seconds=60)
    handle, expires_at = codec.mint({"total": 7, "count": 1})
    assert handle.startswith("v1.new.")
    assert codec.open(handle) == {"total": 7, "count": 1}


def test_keys_rotate_the_first_signs_and_every_key_verifies():
    old_first = HandleCodec(KeyRing.parse("old:old-secret-0123456789"), ttl_seconds=60)
    handle, _ = old_first.mint({"total": 1})
    assert HandleCodec(RING, ttl_seconds=60).open(handle) == {"total": 1}


def test_expired_handle_is_refused_with_when_it_expired():
    clock = Clock()
    codec = HandleCodec(RING, ttl_seconds=60, clock=clock)
    handle, expires_at = codec.mint({"total": 1})
    clock.now = expires_at + 5
    with pytest.raises(
        ExpiredHandle, match=r"handle expired at 2027-01-15T08:01:00\+00:00 \(5 s ago; handles live 60 s\)"
    ):
        codec.open(handle)


def test_altered_payload_is_forged():
    codec = HandleCodec(RING, ttl_seconds=60)
    handle, _ = codec.mint({"total": 1})
    version, kid, payload, signature = handle.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["s"]["total"] = 1_000_000
    forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(ForgedHandle, match="altered or forged"):
        codec.open(f"{version}.{kid}.{forged_payload}.{signature}")


def test_handle_signed_with_another_secret_under_a_known_kid_is_forged():
    impostor = HandleCodec(KeyRing.parse("new:guessed-secret-000000000"), ttl_seconds=60)
    handle, _ = impostor.mint({"total": 1})
    with pytest.raises(ForgedHandle):
        HandleCodec(RING, ttl_seconds=60).open(handle)


def test_unknown_key_id_is_named():
    stranger = HandleCodec(KeyRing.parse("other:other-secret-012345678"), ttl_seconds=60)
    handle, _ = stranger.mint({"total": 1})
    with pytest.raises(UnknownHandleKey, match=r"key id 'other'.*known key ids: new, old"):
        HandleCodec(RING, ttl_seconds=60).open(handle)


@pytest.mark.parametrize(
    "text", ["", "abc", "v2.new.x.y", "v1.new.x", "a.b.c.d.e", "v1." + "x" * 5000, "v1.new.\u00e9t\u00e9.sig"]
)
def test_malformed_handles_are_malformed(text):
    with pytest.raises(MalformedHandle):
        HandleCodec(RING, ttl_seconds=60).open(text)


def _signed(payload: bytes, kid: str = "new", secret: bytes = b"new-secret-0123456789") -> str:
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    signed_part = f"v1.{kid}.{encoded}"
    signature = hmac.new(secret, signed_part.encode(), hashlib.sha256).digest()
    return f"{signed_part}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize("payload", [b"[1]", b"\xff", b'{"s": 1}', b'{"s": 1, "exp": true}', b'{"s": 1, "exp": 1e400}'])
def test_a_validly_signed_but_unreadable_payload_is_malformed_not_trusted(payload):
    with pytest.raises(MalformedHandle):
        HandleCodec(RING, ttl_seconds=60).open(_signed(payload))


def test_each_failure_has_a_distinct_kind():
    kinds = {cls.kind for cls in (MalformedHandle, UnknownHandleKey, ForgedHandle, ExpiredHandle)}
    assert kinds == {"malformed", "unknown-key", "forged", "expired"}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "is empty"),
        ("nosecret", "entry 1 has no ':'"),
        ("bad id!:0123456789abcdef", "key id 'bad id!' must be"),
        ("k:short", "secret is 5 characters, at least 16"),
        ("k:0123456789abcdef,k:0123456789abcdef", "key id 'k' appears more than once"),
    ],
)
def test_key_ring_errors_name_the_entry_and_never_the_secret(spec, needle):
    with pytest.raises(KeyRingError, match=needle) as error:
        KeyRing.parse(spec)
    assert "0123456789abcdef" not in str(error.value) and "short" not in str(error.value).split("characters")[0]


def test_without_keys_a_random_key_is_used_and_a_warning_logged(caplog):
    ring = KeyRing.from_env({})
    assert ring.ephemeral and len(next(iter(ring.keys.values()))) == 32
    assert "MCP_HANDLE_KEYS is not set" in caplog.text
    assert KeyRing.from_env({}).keys != ring.keys


def test_the_ring_reader_refuses_an_unresolved_key_vault_reference():
    """Also where no ``python -m app`` checked first (``uvicorn app.main:app``): named as a reference, not a parse error."""
    environ = {"MCP_HANDLE_KEYS": " @Microsoft.KeyVault(VaultName=kv-mcp;SecretName=mcp-handle-keys)"}
    with pytest.raises(KeyRingError, match=r"MCP_HANDLE_KEYS is an unresolved Key Vault reference .*Secrets User"):
        KeyRing.from_env(environ)


# ---------------------------------------------------------------- over the wire, across processes


def _call(url: str, arguments: dict) -> mcp.types.CallToolResult:
    async def call():
        async with mcp.Client(url, mode="2026-07-28") as client:
            return await client.call_tool("tally", arguments)

    return asyncio.run(call())


def test_tally_handle_minted_by_one_process_continues_on_another():
    keys = {"MCP_HANDLE_KEYS": "k2:second-secret-0123456789,k1:first-secret-0123456789"}
    with running_server(env=keys) as first, running_server(env=keys) as second:
        assert first.url != second.url and first.process.pid != second.process.pid
        step1 = _call(first.mcp_url, {"add": 5})
        step2 = _call(second.mcp_url, {"add": 10, "handle": step1.structured_content["handle"]})
        step3 = _call(first.mcp_url, {"add": -3, "handle": step2.structured_content["handle"]})
        assert (step3.structured_content["total"], step3.structured_content["count"]) == (12, 3)
        # a third process with a different ring refuses, naming the key id
        with running_server(env={"MCP_HANDLE_KEYS": "k9:ninth-secret-0123456789"}) as stranger:
            refused = _call(stranger.mcp_url, {"handle": step3.structured_content["handle"]})
            assert refused.is_error
            assert "handle rejected (unknown-key)" in refused.content[0].text
            assert "'k2'" in refused.content[0].text


def test_tally_reports_each_handle_problem_distinctly(server):
    good = _call(server.mcp_url, {"add": 1}).structured_content["handle"]
    version, kid, payload, signature = good.split(".")
    tampered = f"{version}.{kid}.{payload}.{'A' * len(signature)}"
    cases = {
        "not-a-handle": "handle rejected (malformed)",
        tampered: "handle rejected (forged)",
        f"v1.nokey.{payload}.{signature}": "handle rejected (unknown-key)",
    }
    for handle, needle in cases.items():
        result = _call(server.mcp_url, {"handle": handle})
        assert result.is_error and needle in result.content[0].text, result.content[0].text


ALICE = Caller(id="alice-oid", name="alice@contoso.example", idp="aad", roles=frozenset())
BOB = Caller(id="bob-oid", name="bob@contoso.example", idp="aad", roles=frozenset())


def test_a_handle_minted_for_a_caller_opens_only_for_that_caller():
    codec = HandleCodec(RING, ttl_seconds=60)
    handle, _ = codec.mint({"total": 1}, ALICE)
    renamed = Caller(id=ALICE.id, name="Alice A.", idp="aad", roles=frozenset({"Tally.Use"}))
    assert codec.open(handle, ALICE) == codec.open(handle, renamed) == {"total": 1}  # bound to the id, not the name
    for caller, problem in [
        (BOB, "was minted for another caller"),
        (Caller(id=ALICE.id, name=None, idp="google", roles=frozenset()), "was minted for another caller"),
        (None, "was minted for a signed-in caller, and this request has none"),
    ]:
        with pytest.raises(WrongCaller, match=problem) as error:
            codec.open(handle, caller)
        assert error.value.kind == "wrong-caller"


def test_a_handle_minted_without_a_caller_opens_only_without_one():
    codec = HandleCodec(RING, ttl_seconds=60)
    handle, _ = codec.mint({"total": 1})
    assert codec.open(handle) == {"total": 1}
    with pytest.raises(WrongCaller, match="was minted without a signed-in caller, and this request has one"):
        codec.open(handle, ALICE)


def test_the_binding_is_signed_and_does_not_carry_the_callers_id():
    codec = HandleCodec(RING, ttl_seconds=60)
    handle, _ = codec.mint({"total": 1}, ALICE)
    version, kid, payload, signature = handle.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(body) == {"s", "exp", "c"} and ALICE.id not in json.dumps(body)
    unbound = base64.urlsafe_b64encode(json.dumps({"s": body["s"], "exp": body["exp"]}).encode()).rstrip(b"=")
    with pytest.raises(ForgedHandle):  # dropping the binding breaks the signature
        codec.open(f"{version}.{kid}.{unbound.decode()}.{signature}")
