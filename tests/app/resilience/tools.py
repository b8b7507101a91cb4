"""Requests for the server's own tools and independent checks of their answers.

Bodies are built and results are judged here, apart from any HTTP client, so
the synchronous tests and the asyncio load driver share one definition. The
argument names come from the tool's published input schema (tools/list), so
the tests follow the server's schema rather than restating it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from tests.app.resilience.wire import rpc, structured

HANDLE_PATTERN = re.compile(r"^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class ToolSchemas:
    """Argument names of the tools, read from a tools/list result."""

    def __init__(self, tools_list_result: Mapping[str, Any]) -> None:
        self.schemas = {tool["name"]: tool["inputSchema"] for tool in tools_list_result["tools"]}

    def _param(self, tool: str, *, handle: bool = False, kind: str | None = None) -> str:
        properties = self.schemas[tool].get("properties", {})
        for name, prop in properties.items():
            if handle and "handle" in name.lower():
                return name
            if not handle and "handle" not in name.lower() and (kind is None or prop.get("type") == kind):
                return name
        raise AssertionError(f"tool {tool} has no {'handle' if handle else kind} parameter: {properties}")

    def tally(self, add: int, handle: str | None, *, id: int | str = 1) -> dict:
        arguments: dict[str, Any] = {self._param("tally", kind="integer"): add}
        if handle is not None:
            arguments[self._param("tally", handle=True)] = handle
        return rpc("tools/call", {"name": "tally", "arguments": arguments}, id=id)

    def compute_primes(self, limit: int, *, id: int | str = 1) -> dict:
        return rpc(
            "tools/call",
            {"name": "compute_primes", "arguments": {self._param("compute_primes", kind="integer"): limit}},
            id=id,
        )

    def echo(self, text: str, *, id: int | str = 1) -> dict:
        return rpc("tools/call", {"name": "echo", "arguments": {self._param("echo", kind="string"): text}}, id=id)

    def lookup_fact(self, key: str, *, id: int | str = 1) -> dict:
        return rpc(
            "tools/call", {"name": "lookup_fact", "arguments": {self._param("lookup_fact", kind="string"): key}}, id=id
        )

    @staticmethod
    def whoami(*, id: int | str = 1) -> dict:
        return rpc("tools/call", {"name": "whoami", "arguments": {}}, id=id)


def tally_outcome(result: Mapping[str, Any]) -> tuple[int, str]:
    """(total, next handle) from a tally result."""
    assert not result.get("isError"), f"tally failed: {result}"
    value = structured(result)
    assert isinstance(value, dict), f"tally result is not an object: {result}"
    total = value.get("total")
    handle = value.get("handle")
    assert isinstance(total, int) and isinstance(handle, str) and HANDLE_PATTERN.match(handle), value
    return total, handle


def handle_key_id(handle: str) -> str:
    return handle.split(".")[1]


@lru_cache(maxsize=4)
def _sieve(limit: int) -> bytes:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return bytes(sieve)


def prime_count(limit: int, sieve_size: int | None = None) -> int:
    """pi(limit), computed here independently of the server (from a sieve of `sieve_size` >= limit, if given)."""
    if limit < 2:
        return 0
    sieve = _sieve(max(limit, sieve_size or 0))
    return sieve.count(1, 0, limit + 1)


def check_primes(result: Mapping[str, Any], limit: int, sieve_size: int | None = None) -> None:
    """The compute_primes answer agrees with an independent sieve."""
    assert not result.get("isError"), f"compute_primes({limit}) failed: {result}"
    value = structured(result)
    assert isinstance(value, dict), f"compute_primes result is not an object: {result}"
    assert value.get("prime_count") == prime_count(limit, sieve_size), (
        f"compute_primes({limit}) prime_count {value.get('prime_count')}: {value}"
    )
