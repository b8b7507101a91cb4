"""Shared fixtures for the app tests: one real server process, raw-wire helpers, the spec's JSON schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.app.serving import ServerProcess, running_server

# The official schema, vendored with its source and licence (tests/app/schemas/README.md).
SCHEMA_PATH = Path(__file__).with_name("schemas") / "mcp_2026-07-28.schema.json"
HANDLE_KEYS = "primary:test-secret-0123456789abcdef,old:retired-secret-0123456789"
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
}


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """One server for the read-only tests (a fixed key ring, so handles are predictable to verify)."""
    with running_server(env={"MCP_HANDLE_KEYS": HANDLE_KEYS, "WEBSITE_INSTANCE_ID": "instance-under-test"}) as srv:
        yield srv


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@cache
def _schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)  # once: the schema itself is sound
    return schema


@cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    schema = _schema()
    root = {"$schema": schema["$schema"], "$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.validators.validator_for(root)(root)


def validate(instance: Any, definition: str) -> None:
    """Validate ``instance`` against ``#/$defs/<definition>`` of the official 2026-07-28 schema."""
    error = jsonschema.exceptions.best_match(_validator(definition).iter_errors(instance))
    if error is not None:
        raise error


def modern_headers(method: str, name: str | None = None, version: str = MODERN) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def modern_request(method: str, params: dict[str, Any] | None = None, request_id: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": META}}


def rpc(
    http: httpx.Client, body: Any, headers: dict[str, str] | None = None, content: bytes | None = None
) -> httpx.Response:
    """POST one message to /mcp exactly as given (no client-side fixing up)."""
    if content is None:
        content = json.dumps(body).encode()
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return http.post("/mcp", content=content, headers={**base, **(headers or {})})


def call_modern(http: httpx.Client, method: str, params: dict[str, Any] | None = None, name: str | None = None):
    return rpc(http, modern_request(method, params), modern_headers(method, name))
