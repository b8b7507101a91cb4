"""Locust load test: MCP 2026-07-28 tools/call against any MCP server (a deployed site or a local one).

Every request is what a modern client sends: one JSON-RPC request per POST to
/mcp with ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` headers and
``params._meta`` carrying the protocol version, client capabilities and client
info. A response counts as a success only when it is HTTP 200, a JSON-RPC
result for the request's id, ``resultType: "complete"`` and not ``isError``.

Each user lists the tools once, then calls ``MCP_TOOL`` with
``MCP_ARGUMENTS``; a tool the server does not have stops the run, named in a
failed ``MCP_TOOL`` check.
Where the server has a ``tally`` tool, a quarter of the calls step a tally
chain per user (the handle passed from call to call), which must keep the
right total under load, wherever each call lands.

At the end Locust's own statistics are followed by the hits per serving
instance, from the ``X-Served-By`` response header (merged across workers
with ``--processes`` or a distributed run):

    uv run locust -f loadtest/locustfile.py --host https://<site>.azurewebsites.net \\
        --headless --users 50 --spawn-rate 10 --run-time 2m

    MCP_TOOL=echo MCP_ARGUMENTS='{"message": "hi"}' uv run locust -f loadtest/locustfile.py --host ... --headless

Settings (environment):

| variable | meaning | default |
|---|---|---|
| ``MCP_TOOL`` | the tool every user calls | ``whoami`` |
| ``MCP_ARGUMENTS`` | its arguments, a JSON object | ``{}`` |
| ``MCP_PATH`` | the MCP endpoint's path | ``/mcp`` |
| ``MCP_WAIT_MAX`` | seconds a user pauses between calls, uniformly from 0 | 0.05 |
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import random
import re
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.runners import WorkerRunner


def _wait_max(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60:
        raise ValueError(f"MCP_WAIT_MAX={raw!r}: expected seconds from 0 to 60")
    return value


def _path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError(f"MCP_PATH={raw!r}: expected a path starting with '/', e.g. /mcp")
    return raw


# The spec's tool-name characters; they also keep the Mcp-Name header plain ASCII.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _tool(raw: str) -> str:
    if not _TOOL_NAME.fullmatch(raw):
        raise ValueError(f"MCP_TOOL={raw!r}: expected a tool name of 1 to 128 letters, digits, _ . -")
    return raw


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(
            f"""MCP_ARGUMENTS={raw!r}: expected a JSON object of the tool's arguments, e.g. {{"message": "hi"}}"""
        )
    return value


PROTOCOL_VERSION = "2026-07-28"
MCP_PATH = _path(os.environ.get("MCP_PATH", "/mcp"))
WAIT_MAX_S = _wait_max(os.environ.get("MCP_WAIT_MAX", "0.05"))
TOOL = _tool(os.environ.get("MCP_TOOL", "whoami"))
ARGUMENTS = _arguments(os.environ.get("MCP_ARGUMENTS", "{}"))
TALLY_SHARE = 0.25
SERVED_BY = "X-Served-By"
NO_HEADER = "(no X-Served-By header)"
REPORT_TITLE = "Hits per serving instance (X-Served-By)"

logger = logging.getLogger(__name__)
served_by: collections.Counter[str] = collections.Counter()
_ids = itertools.count(1)


def mcp_request(request_id: int, method: str, params: dict[str, Any], name: str | None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a 2026-07-28 request; ``name`` is its Mcp-Name (the tool's, for tools/call)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name  # tool names are plain ASCII (MCP_TOOL is checked), so no =?base64?...?= form
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {
            **params,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcpscale-locust", "version": "1.0"},
            },
        },
    }
    return headers, json.dumps(body).encode()


class McpUser(FastHttpUser):
    wait_time = between(0, WAIT_MAX_S)

    def on_start(self) -> None:
        self.tally_handle: str | None = None
        self.tally_expected = 0
        self.has_tally = False
        listing = self.request("tools/list", {}, None)
        if listing is None:
            return  # recorded as a failure; the calls will tell the rest
        tools = [tool.get("name") for tool in listing.get("tools", [])]
        if TOOL not in tools:
            # Every call would fail the same way: say why once, and stop the run.
            problem = f"MCP_TOOL={TOOL!r}: the server has no such tool (it offers {tools})"
            logger.error(problem)
            _fail_check("MCP_TOOL", problem)
            self.environment.runner.quit()
        self.has_tally = "tally" in tools

    def request(self, method: str, params: dict[str, Any], name: str | None) -> dict[str, Any] | None:
        """POST one request; returns its result, or None after recording a failure."""
        request_id = next(_ids)
        headers, body = mcp_request(request_id, method, params, name)
        label = f"{method} {name}" if name else method
        with self.client.post(MCP_PATH, data=body, headers=headers, name=label, catch_response=True) as response:
            served_by[response.headers.get(SERVED_BY) or NO_HEADER] += 1
            problem, result = _check(response.status_code, response.text, request_id)
            if problem:
                response.failure(problem)
                return None
            response.success()
            return result

    def call_tool(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """One tools/call; returns its structured result, or None after recording a failure."""
        result = self.request("tools/call", {"name": tool, "arguments": arguments}, tool)
        return None if result is None else result.get("structuredContent") or {}

    @task
    def step(self) -> None:
        if self.has_tally and random.random() < TALLY_SHARE:
            self.tally()
        else:
            self.call_tool(TOOL, ARGUMENTS)

    def tally(self) -> None:
        amount = random.randint(1, 9)
        arguments: dict[str, Any] = {"add": amount}
        if self.tally_handle is not None:
            arguments["handle"] = self.tally_handle
        result = self.call_tool("tally", arguments)
        if result is None:
            self.tally_handle, self.tally_expected = None, 0  # start a fresh chain
            return
        self.tally_expected += amount
        if result.get("total") != self.tally_expected:
            _fail_check("tally total", f"tally total {result.get('total')}, expected {self.tally_expected}")
            self.tally_handle, self.tally_expected = None, 0
            return
        self.tally_handle = result.get("handle")


def _fail_check(name: str, problem: str) -> None:
    """A failed check that is not an HTTP request, in Locust's statistics (so the run exits non-zero)."""
    events.request.fire(
        request_type="CHECK", name=name, response_time=0, response_length=0, exception=AssertionError(problem)
    )


def _check(status: int, text: str | None, request_id: int) -> tuple[str | None, dict[str, Any]]:
    """(None, result) for a good response, else (what is wrong, {})."""
    try:
        message = json.loads(text or "")
    except json.JSONDecodeError:
        message = None
    # Without the request's id, so that Locust's error report has one row per distinct error.
    if isinstance(message, dict) and isinstance(message.get("error"), dict):
        error = message["error"]
        return f"HTTP {status}, JSON-RPC error {error.get('code')}: {str(error.get('message'))[:200]}", {}
    if status != 200:
        return f"HTTP {status}: {(text or '')[:200]}", {}
    if message is None:
        return f"not JSON: {(text or '')[:200]}", {}
    if not isinstance(message, dict) or message.get("id") != request_id:
        return f"not the response to request {request_id}: {str(message)[:200]}", {}
    result = message.get("result")
    if not isinstance(result, dict) or result.get("resultType") != "complete":
        return f"result without resultType 'complete': {str(result)[:200]}", {}
    if result.get("isError"):
        return f"tool error: {str(result.get('content'))[:200]}", {}
    return None, result


# Distributed runs: each worker ships its counts with its stats; the master sums them.
@events.report_to_master.add_listener
def _ship_counts(client_id: str, data: dict[str, Any]) -> None:
    data["served_by"] = dict(served_by)
    served_by.clear()


@events.worker_report.add_listener
def _merge_counts(client_id: str, data: dict[str, Any]) -> None:
    served_by.update(data.get("served_by", {}))


@events.quitting.add_listener
def _print_counts(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    print(format_counts(served_by), flush=True)


def format_counts(counts: collections.Counter[str]) -> str:
    total = sum(counts.values())
    lines = [f"{REPORT_TITLE}: {len(counts)} instance(s), {total} responses"]
    width = max((len(name) for name in counts), default=0)
    for name, count in counts.most_common():
        lines.append(f"  {name:<{width}}  {count:>8}  {100 * count / total:5.1f}%")
    return "\n".join(lines)
