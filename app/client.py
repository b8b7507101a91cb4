"""Verify a deployment like a user: ``python -m app.client URL``.

Against any MCP server: a deployed site (``pulumi stack output mcpUrl``), a
local one (``http://127.0.0.1:8000/mcp``; a URL without a path gets ``/mcp``),
the bundled demo or a team's own server. With the official MCP SDK client:

1. connect: ``server/discover`` (mode ``auto`` falls back to the legacy
   handshake for old servers), print the negotiated version and server info;
2. ``tools/list``: every tool with the list's cache hints (``ttlMs``, ``cacheScope``);
3. the spread: N calls of the probe, ``--call NAME JSON`` (any tool, with
   those arguments), else ``whoami`` where the server has it, else
   ``tools/list``. The serving instances are counted from each response's
   ``X-Served-By`` header (any server on this host), and, for ``whoami``,
   from the ``instance_id`` it reports, so you can see the load balancer
   spread calls over the plan's instances;
4. where the server has a ``tally`` tool: ``tally`` over several calls with a
   handle passed from call to call; the instance serving each step is
   printed, and the final total must equal the sum of what was added,
   wherever each step ran (the state lives in the signed handle, not in an
   instance).

Exit status: 0 when every step passed; 1 on any protocol error, tool error,
transport failure or wrong total; 2 on bad usage. ``--json`` prints the
report as one JSON object (for scripts) instead of text.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Implementation

SERVED_BY_HEADER = "x-served-by"
NO_HEADER = "(no X-Served-By header)"
LIST_PROBE = "tools/list"
CLIENT_INFO = Implementation(name="mcpscale-verify", version="1.0")
MODES = ("auto", "2026-07-28", "legacy")


class VerificationFailed(Exception):
    """A check failed; the message says which and why."""


@dataclass(frozen=True)
class Probe:
    """What the spread calls: a tool with its arguments, or ``tools/list`` (``tool`` None)."""

    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.tool or LIST_PROBE


@dataclass
class ToolCall:
    step: int
    served_by: str | None
    instance: str | None
    value: Any = None


@dataclass
class Report:
    url: str
    protocol_version: str | None = None
    server: dict[str, Any] | None = None
    discover_cache: dict[str, Any] | None = None
    tools: list[str] = field(default_factory=list)
    tools_cache: dict[str, Any] | None = None
    probe: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    tally_skipped: bool = False
    tally: list[ToolCall] = field(default_factory=list)
    tally_expected: int | None = None
    tally_total: int | None = None
    tally_instances: list[str] = field(default_factory=list)
    ok: bool = False
    error: str | None = None


def mcp_endpoint(url: str) -> str:
    """``url`` itself, or ``url`` + ``/mcp`` when it has no path (a site's root URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"URL must be http(s)://host[:port][/path], got {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/mcp")
    return urlunsplit(parts)


def tool_value(result: CallToolResult, tool: str) -> Any:
    """The tool's structured content, else its text parsed as JSON, else the text; a tool error fails the check."""
    text = " ".join(getattr(block, "text", "") for block in result.content)
    if result.is_error:
        raise VerificationFailed(f"tool {tool!r} returned an error result: {text or result.content!r}")
    if result.structured_content is not None:
        return result.structured_content
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _instance_of(whoami: Any) -> str | None:
    """The ``instance_id`` a whoami result reports (the seed sample's field), if it reports one."""
    instance = whoami.get("instance_id") if isinstance(whoami, dict) else None
    return instance if isinstance(instance, str) and instance else None


class _ServedBy:
    """Remembers the ``X-Served-By`` header of the latest MCP response (calls are sequential)."""

    def __init__(self) -> None:
        self.latest: str | None = None

    async def __call__(self, response: httpx2.Response) -> None:
        self.latest = response.headers.get(SERVED_BY_HEADER)

    def take(self) -> str | None:
        value, self.latest = self.latest, None
        return value


async def verify(
    url: str,
    *,
    call: Probe | None = None,
    calls: int = 20,
    tally_steps: int = 6,
    mode: str = "auto",
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    """Run every check against ``url``; the report says what was seen and whether it passed."""
    report = Report(url=mcp_endpoint(url))
    served_by = _ServedBy()
    http_client = httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout), headers=headers or {}, event_hooks={"response": [served_by]}
    )
    try:
        async with http_client:
            transport = streamable_http_client(report.url, http_client=http_client, terminate_on_close=False)
            async with Client(
                transport, mode=mode, read_timeout_seconds=timeout, client_info=CLIENT_INFO, cache=None
            ) as client:
                await _connect(client, report, log)
                await _list_tools(client, report, log)
                probe = _probe(report.tools, call)
                await _spread(client, report, probe, calls, served_by, log)
                if "tally" in report.tools:
                    await _tally(client, report, tally_steps, served_by, log)
                else:
                    report.tally_skipped = True
                    log("tally: skipped, the server has no 'tally' tool")
        report.ok = True
    except Exception as error:  # noqa: BLE001 -- any failure, protocol or transport, fails the verification
        report.error = _describe(error)
    if report.error:
        log(f"FAILED: {report.error}")
    else:
        log("OK: every check passed")
    return report


def _describe(error: BaseException) -> str:
    """One line for an error, unwrapping the task-group exception groups the SDK raises."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, VerificationFailed):
        return str(error)
    if isinstance(error, MCPError):
        return f"protocol error {error.code}: {error.message}" + (f" (data: {error.data})" if error.data else "")
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _connect(client: Client, report: Report, log: Callable[[str], None]) -> None:
    report.protocol_version = client.protocol_version
    info = client.server_info
    report.server = info.model_dump(exclude_none=True) if info else None
    discover = client.session.discover_result
    log(f"connected to {report.url}: protocol {client.protocol_version}, server {report.server or 'anonymous'}")
    if discover is not None:
        report.discover_cache = {"ttlMs": discover.ttl_ms, "cacheScope": discover.cache_scope}
        log(
            f"  server/discover: versions {discover.supported_versions}, ttlMs={discover.ttl_ms} cacheScope={discover.cache_scope}"
        )


async def _list_tools(client: Client, report: Report, log: Callable[[str], None]) -> None:
    listing = await client.list_tools()
    report.tools = [tool.name for tool in listing.tools]
    report.tools_cache = {"ttlMs": listing.ttl_ms, "cacheScope": listing.cache_scope}
    log(f"tools/list: {len(listing.tools)} tools, cache hints ttlMs={listing.ttl_ms} cacheScope={listing.cache_scope}")
    for tool in listing.tools:
        log(f"  {tool.name}: {(tool.description or '').splitlines()[0] if tool.description else ''}")


def _probe(tools: list[str], call: Probe | None) -> Probe:
    """``call`` (checked to be offered), else whoami where the server has it, else tools/list."""
    if call is not None:
        if call.tool not in tools:
            raise VerificationFailed(f"--call {call.tool!r}: the server has no such tool (it offers {tools})")
        return call
    return Probe("whoami") if "whoami" in tools else Probe(None)


async def _spread(
    client: Client, report: Report, probe: Probe, calls: int, served_by: _ServedBy, log: Callable[[str], None]
) -> None:
    report.probe = probe.name
    for step in range(1, calls + 1):
        if probe.tool is None:
            await client.list_tools()
            value = None
        else:
            value = tool_value(await client.call_tool(probe.tool, probe.arguments), probe.tool)
            if step == 1:
                log(f"{probe.tool} {json.dumps(probe.arguments)} -> {_clip(json.dumps(value, ensure_ascii=False))}")
        instance = _instance_of(value) if probe.tool == "whoami" else None
        report.calls.append(ToolCall(step, served_by.take(), instance, value))
    report.served_by = _counts(call.served_by or NO_HEADER for call in report.calls)
    _log_spread(f"{probe.name} x{calls}", "X-Served-By", report.served_by, calls, log)
    report.instances = _counts(call.instance for call in report.calls if call.instance)
    if report.instances:
        _log_spread(f"{probe.name} x{calls}", "whoami's instance_id", report.instances, calls, log)


def _counts(names: Iterable[str]) -> dict[str, int]:
    return dict(collections.Counter(names).most_common())


def _log_spread(what: str, source: str, counts: dict[str, int], calls: int, log: Callable[[str], None]) -> None:
    log(f"{what}: {len(counts)} serving instance(s) by {source}")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        log(f"  {name:<{width}}  {count:>4}  {'#' * round(40 * count / calls)}")


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _tally(client: Client, report: Report, steps: int, served_by: _ServedBy, log: Callable[[str], None]) -> None:
    rng = random.Random()
    handle: str | None = None
    expected = 0
    log(f"tally over {steps} calls, the handle passed from call to call:")
    for step in range(1, steps + 1):
        amount = rng.randint(1, 100)
        expected += amount
        arguments: dict[str, Any] = {"add": amount}
        if handle is not None:
            arguments["handle"] = handle
        payload = tool_value(await client.call_tool("tally", arguments), "tally")
        handle, total = (payload.get("handle"), payload.get("total")) if isinstance(payload, dict) else (None, None)
        if not isinstance(handle, str) or not isinstance(total, int):
            raise VerificationFailed(f"tally returned no handle and total: {payload!r}")
        who = served_by.take()
        report.tally.append(ToolCall(step, who, None, total))
        log(f"  step {step}: +{amount:<3} -> total {total:<5} served by {who or '?'}")
        if total != expected:
            raise VerificationFailed(f"tally total after step {step} is {total}, expected {expected}")
    report.tally_expected, report.tally_total = expected, total
    report.tally_instances = sorted({c.served_by for c in report.tally if c.served_by})
    log(f"tally total {total} == {expected} across {len(report.tally_instances) or 'unknown'} instance(s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.client",
        description="Verify any MCP server: discover, tools, the spread over instances, and handles where it has tally.",
    )
    parser.add_argument("url", help="MCP endpoint (https://<site>.azurewebsites.net/mcp); a bare site URL gets /mcp")
    parser.add_argument(
        "--call",
        nargs=2,
        metavar=("NAME", "JSON"),
        help='the tool the spread calls and its arguments as a JSON object, e.g. --call echo \'{"message": "hi"}\' '
        "(default whoami where the server has it, else tools/list)",
    )
    parser.add_argument("--calls", type=_count(1, 10_000), default=20, help="calls for the spread (default 20)")
    parser.add_argument(
        "--tally-steps", type=_count(1, 1_000), default=6, help="tally calls, if it has tally (default 6)"
    )
    parser.add_argument("--mode", choices=MODES, default="auto", help="protocol negotiation (default auto)")
    parser.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per request (default 30)")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="'NAME: VALUE'",
        help="extra HTTP header, repeatable (e.g. 'Authorization: Bearer ...' when Easy Auth is on)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    parser.add_argument("--verbose", action="store_true", help="also show the MCP SDK's own log (tracebacks)")
    return parser


def _header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected 'NAME: VALUE', got {raw!r}")
    return name.strip(), value.strip()


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 3600, got {raw!r}")
    return value


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def parse_call(name: str, raw: str) -> Probe:
    """``--call NAME JSON`` as a probe; the arguments must be a JSON object."""
    try:
        arguments = json.loads(raw)
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ValueError(
            f'--call {name}: JSON must be an object of arguments, e.g. \'{{"message": "hi"}}\', got {raw!r}'
        )
    return Probe(name, arguments)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mcp_endpoint(args.url)
        call = parse_call(*args.call) if args.call else None
    except ValueError as error:
        parser.error(str(error))
    if not args.verbose:
        # The SDK logs each failed response with a traceback; the report already names the failure.
        logging.getLogger("mcp").setLevel(logging.CRITICAL)
    log = (lambda _line: None) if args.json else print
    report = asyncio.run(
        verify(
            args.url,
            call=call,
            calls=args.calls,
            tally_steps=args.tally_steps,
            mode=args.mode,
            timeout=args.timeout,
            headers=dict(args.header),
            log=log,
        )
    )
    if args.json:
        print(json.dumps(asdict(report), default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
