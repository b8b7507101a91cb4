"""JSON-RPC dispatch for one MCP message: the modern 2026-07-28 ladder and the legacy handshake era.

Any `MCPServer` is served: this module judges the envelope (the ladder below)
and answers the few messages that are hot and cheap to answer by hand; every
other request runs on the SDK's own kernel (`app.kernel`), so tools, prompts,
resources, completion, logging, progress and the multi-round
``input_required`` flow behave exactly as on the SDK's transport.

`Dispatcher.handle` takes one parsed `Exchange` and returns a `Reply`
(HTTP status + body). It is the single place a message is decided, which
makes it the seam for telemetry: wrap it (see `MessageMiddleware`) and the
wrapper sees the method, tool name / resource URI, protocol version, request
id and ``_meta`` before the call, and the final JSON-RPC error code, tool
``isError`` flag and HTTP status after it.

Era routing (the issue's "dual-era" server):

- ``MCP-Protocol-Version: 2026-07-28`` or a ``params._meta`` protocol version
  -> the modern ladder: required ``_meta`` keys (-32602), routing headers equal
  to the body (-32020), a supported version (-32022), then the method (-32601).
  Errors carry the HTTP status of the spec's table.
- no version header, or a handshake-era one (2025-11-25, 2025-06-18,
  2025-03-26) -> legacy semantics, served statelessly: ``initialize`` is
  answered with the negotiated version and no ``Mcp-Session-Id``; later
  requests need no session. JSON-RPC errors go back with HTTP 200, as the
  handshake-era transport does: a legacy client reads HTTP 404 as "session
  expired" and would re-initialize in a loop.
- any other version header -> -32022 naming the versions served.

The hand-written fast path, and why each piece pays (each answers for a
fraction of the CPU the SDK kernel's own call takes for the same request;
figures: bench/RESULTS.md):

- Results that never change while a process runs (server/discover and the
  four lists per protocol version, ``initialize`` per handshake version) are
  asked of the kernel once at start-up and kept as bytes; a request pays only
  for splicing its id in. Only when the
  server's middleware chain is the SDK's own (a middleware may scope the
  catalogue to the caller).
- ``tools/call`` of a tool that takes no `Context` and no ``Resolve(...)``
  parameter (it cannot observe the request, so the per-request context,
  session and middleware chain the kernel builds are invisible to it): the
  SDK's ``call_tool`` with its error handling mirrored from
  ``MCPServer._handle_call_tool``. Not for a
  retry carrying ``inputResponses`` / ``requestState`` or a server with
  extensions or middleware of its own, which the kernel must see.

Both answer exactly what the kernel answers for the same request
(tests/app/test_protocol.py compares them, per protocol version).

The caller (`app.identity`): behind Easy Auth, a request that can observe
the caller (a tool call, a role-scoped ``tools/list``, anything the kernel
runs) has it parsed from its headers into ``Exchange.caller`` and made
`app.identity.current_caller()` while it is served; answers from the
start-up cache never parse it. Headers that do not parse are HTTP 401.

Tool roles (``MCP_TOOL_ROLES``, `app.identity.ToolRoles`): a tool the caller
lacks every listed role for is left out of its ``tools/list`` and its call is
refused. The code is -32602, the spec's code for a tool the server will not
run under that name (which, for this caller, it is: its list does not name
it), with ``data.requiredRoles``; the HTTP status is the MCP authorization
spec's 403 (signed in, not permitted), or 401 when no one is signed in. With
roles, every ``tools/list`` answer depends on who asks, so it is
``cacheScope: "private"``; its bytes are kept per set of hidden tools, at
most one per combination of the listed tools.

Rate limits (``MCP_RATE_LIMITS``, `app.ratelimit`): a ``tools/call`` of a
limited tool passes its gate after the checks above and before the tool runs,
on the fast path and the kernel's alike; a refusal is `RATE_LIMITED` with
HTTP 429 (503 when the limits cannot be checked and they fail closed) and
``Retry-After``, in both eras. A tool without a limit costs one dict lookup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.request_state import RequestStateBoundary
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    decode_header_value,
    validate_mcp_param_headers,
    x_mcp_header_map,
)
from mcp.types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
    UNSUPPORTED_PROTOCOL_VERSION,
    CallToolResult,
    TextContent,
)
from mcp.types.version import LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from app.identity import Caller, CallerError, ToolRoles, caller_from_headers, serve_as, stop_serving
from app.kernel import Kernel, context_free_tools, has_extensions, prompt_argument_errors
from app.ratelimit.limiter import Gate, RateLimiter, Refusal, record_refusal
from app.ratelimit.spec import RateLimitSpecError, check_tools
from app.settings import TOOL_ROLES_ENV, SettingsError
from app.sse import EventSink, sse_frame

logger = logging.getLogger(__name__)

LEGACY_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
"""Handshake-era versions served statelessly. 2024-11-05 predates Streamable HTTP (it used HTTP+SSE), so an
``initialize`` asking for it is answered with the latest handshake version, as version negotiation allows."""
SUPPORTED_VERSIONS: tuple[str, ...] = (*reversed(MODERN_PROTOCOL_VERSIONS), *LEGACY_VERSIONS)
LEGACY_DEFAULT_VERSION = "2025-03-26"
"""A handshake-era request without a version header: the spec says to assume 2025-03-26."""
LIST_METHODS = ("tools/list", "resources/list", "resources/templates/list", "prompts/list")
SESSION_METHODS = frozenset({"resources/subscribe", "resources/unsubscribe"})
"""Handshake-era methods whose whole point is later notifications on a session this server does not keep."""

_JSON_STATUS_OK = 200


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Exchange:
    """One JSON-RPC message on its way through the server.

    The transport fills ``headers``, ``raw_headers``, ``sink`` and
    ``message`` (or ``parse_error``); the dispatcher fills the rest as it
    decides, so a wrapper reading the exchange after the call sees the outcome.
    """

    headers: Mapping[str, str]
    """Routing headers by lowercase name, values with surrounding whitespace removed."""
    duplicated_headers: frozenset[str] = frozenset()
    raw_headers: Iterable[tuple[bytes, bytes]] = ()
    """Every request header as received (lowercase names); decoded only for a request that needs them."""
    sink: EventSink | None = None
    """Where notifications about this request go (None: the client does not accept ``text/event-stream``)."""
    message: Any = None
    parse_error: str | None = None
    request_id: str | int | None = None
    method: str | None = None
    params: dict[str, Any] | None = None
    meta: Mapping[str, Any] | None = None
    era: str | None = None
    """"modern" or "legacy" once routed."""
    protocol_version: str | None = None
    name: str | None = None
    """Tool or prompt name (tools/call, prompts/get) or resource URI (resources/read)."""
    error_code: int | None = None
    tool_error: bool = False
    status: int = 0
    caller: Caller | None = None
    """Who called (behind Easy Auth, once the dispatcher needed it; see the module docstring); telemetry records
    ``caller.id``, never ``caller.name``."""
    peer: str | None = None
    """The TCP peer's address (the platform's front end on App Service); rate limits key anonymous callers by it."""

    def header_pairs(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self.raw_headers]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes | None
    """None: no body (202 for a notification, or a streamed reply already written to the sink)."""
    streamed: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Extra response headers (``Retry-After`` on a rate-limit refusal)."""


MessageHandler = Callable[[Exchange], Awaitable[Reply]]
MessageMiddleware = Callable[[Exchange, MessageHandler], Awaitable[Reply]]
FastHandler = Callable[[Exchange], Awaitable[bytes | None]]
"""The result JSON, or None when the kernel must answer this one."""


class RpcError(Exception):
    """A JSON-RPC error to send back; ``status`` overrides the table's HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        status: int | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status
        self.headers = headers


class AccessRefused(RpcError):
    """An identity refusal (401, 403): its HTTP status stands in both eras, since it is about the caller."""


RATE_LIMITED = -32010
"""A call refused by a rate limit (HTTP 429) or while the limits cannot be checked (503, fail closed). MCP
defines no such code; the 2026-07-28 allocation leaves -32000..-32019 to implementations (-32020..-32099 are
the spec's), and the SDK uses -32000 and -32001 internally."""


def rate_refusal(refusal: Refusal) -> AccessRefused:
    """A rate-limit refusal: about the caller too, so its 429 (or 503) and ``Retry-After`` stand in both eras."""
    return AccessRefused(
        RATE_LIMITED,
        refusal.message,
        data=refusal.data,
        status=refusal.status,
        headers=((b"retry-after", b"%d" % refusal.retry_after),),
    )


class _HeaderPairs:
    """Raw header pairs behind the ``.items()`` the SDK's Mcp-Param check reads, so it sees duplicates."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return self._pairs


def _header_mismatch(header: str, header_value: str | None, body_name: str, body_value: Any) -> RpcError:
    if header_value is None:
        return RpcError(
            HEADER_MISMATCH,
            f"Header mismatch: required header {header} is missing; it must equal the body's {body_name} ({body_value!r})",
        )
    return RpcError(
        HEADER_MISMATCH,
        f"Header mismatch: {header} header value {header_value!r} does not match body value {body_value!r}",
    )


class Dispatcher:
    """Decides every MCP message for one `MCPServer` (adapted to the fleet by `app.kernel.host_server`)."""

    def __init__(
        self,
        server: MCPServer,
        easy_auth: bool = False,
        tool_roles: ToolRoles | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._server = server
        self._tool_roles = tool_roles
        self._rate_limiter = rate_limiter
        self._gates: dict[str, Gate] = {}
        """Per limited tool, the limits its calls pass (app.ratelimit); a tool not here is not limited."""
        self._caller_free: frozenset[str] = frozenset({"initialize", "ping"})
        """Methods answered without anything able to observe the caller: their callers are never parsed."""
        self._scoped_tool_lists: dict[tuple[str | None, frozenset[str]], bytes] = {}
        self.kernel = Kernel(server)
        # One context for every fast-path call: those tools take no Context, so none of them can read it, and
        # building a fresh one per call was a large part of a call_tool's cost.
        self._context: Context = Context(mcp_server=server)
        self._result_meta_json = _dumps({SERVER_INFO_META_KEY: self.kernel.lowlevel.server_info_stamp})
        # A middleware of the team's own (or an extension's interceptor) may change any answer per request, so
        # with one the kernel answers everything.
        self._sdk_chain_only = all(
            isinstance(m, RequestStateBoundary) or m is prompt_argument_errors for m in server.middleware
        ) and not has_extensions(server)
        self._tool_names: frozenset[str] = frozenset()
        self._prompt_names: frozenset[str] = frozenset()
        self._fast_tools: frozenset[str] = frozenset()
        self._param_header_schemas: dict[str, Any] = {}
        self._cached: dict[tuple[str, str], bytes] = {}
        self._started = False
        self._fast: dict[str, FastHandler] = {
            method: self._cached_result for method in ("server/discover", *LIST_METHODS)
        }
        self._fast["tools/call"] = self._call_tool
        if tool_roles is not None:
            self._fast["tools/list"] = self._tools_for_caller
        # Chosen once, not tested per request: without Easy Auth a request pays nothing for identity.
        self._route = self._serve_as_caller if easy_auth else self._serve
        self._fast_legacy: dict[str, FastHandler] = {**self._fast, "initialize": self._initialize, "ping": self._ping}

    async def start(self, lifespan_state: Any = None) -> None:
        """Read the catalogue once; with the SDK's own middleware chain, keep the results that never change."""
        self._started = True
        self.kernel.lifespan_state = lifespan_state
        tools = await self._server.list_tools()
        self._tool_names = frozenset(tool.name for tool in tools)
        unknown = sorted(set(self._tool_roles.roles) - self._tool_names) if self._tool_roles is not None else []
        if unknown:
            raise SettingsError(
                f"{TOOL_ROLES_ENV} names tool(s) the server does not have: {', '.join(unknown)}; "
                f"its tools: {', '.join(sorted(self._tool_names))}"
            )
        if self._rate_limiter is not None:
            try:
                check_tools(self._rate_limiter.limits, self._tool_names)
            except RateLimitSpecError as error:
                raise SettingsError(str(error)) from None
            gates = {name: self._rate_limiter.gate(name) for name in self._tool_names}
            self._gates = {name: gate for name, gate in gates.items() if gate is not None}
        self._prompt_names = frozenset(prompt.name for prompt in await self._server.list_prompts())
        self._param_header_schemas = {
            tool.name: tool.input_schema for tool in tools if x_mcp_header_map(tool.input_schema)
        }
        for version in LEGACY_VERSIONS:
            # Always from here: a stateless host answers the handshake itself (the seed sample's k6 script sends
            # initialize without params, which the kernel would refuse).
            handshake = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "-", "version": "-"}}
            self._cached["initialize", version] = _dumps(await self._kernel_result("initialize", handshake, version))
        if not self._sdk_chain_only:
            return
        self._fast_tools = context_free_tools(self._server)
        cached = {"server/discover", *LIST_METHODS} - ({"tools/list"} if self._tool_roles is not None else set())
        self._caller_free |= cached
        for version in MODERN_PROTOCOL_VERSIONS:
            envelope = {"_meta": {PROTOCOL_VERSION_META_KEY: version, CLIENT_CAPABILITIES_META_KEY: {}}}
            for method in ("server/discover", *LIST_METHODS):
                self._cached[method, version] = _dumps(await self._kernel_result(method, envelope, version))
        for version in LEGACY_VERSIONS:
            for method in LIST_METHODS:
                self._cached[method, version] = _dumps(await self._kernel_result(method, None, version))

    async def _kernel_result(self, method: str, params: dict[str, Any] | None, version: str) -> dict[str, Any]:
        return await self.kernel.call(method, params, 0, version, None, {}, {}, None)

    # ---------------------------------------------------------------- entry

    async def handle(self, exchange: Exchange) -> Reply:
        """Decide one message; never raises (an unexpected failure becomes -32603 and is logged)."""
        if not self._started:  # served without an ASGI lifespan (some test harnesses): start on first use
            await self.start()
        try:
            reply = await self._handle(exchange)
        except RpcError as error:
            reply = self._error_reply(exchange, error)
        except Exception:
            logger.exception("internal error handling %s", exchange.method)
            reply = self._error_reply(exchange, RpcError(INTERNAL_ERROR, "Internal error", status=500))
        sink = exchange.sink
        if sink is not None and sink.started:
            # Notifications went out as SSE: the answer is the stream's last event, whatever its outcome.
            await sink.close(sse_frame(reply.body or b""))
            exchange.status = _JSON_STATUS_OK
            return Reply(_JSON_STATUS_OK, None, streamed=True)
        return reply

    async def _handle(self, exchange: Exchange) -> Reply:
        if exchange.parse_error is not None:
            raise RpcError(PARSE_ERROR, f"Parse error: {exchange.parse_error}")
        message = exchange.message
        if not isinstance(message, dict):
            kind = "a batch (array)" if isinstance(message, list) else f"a JSON {type(message).__name__}"
            raise RpcError(INVALID_REQUEST, f"Invalid request: the body is {kind}; send one JSON-RPC object per POST")
        is_request = "id" in message
        if is_request:
            request_id = message["id"]
            if isinstance(request_id, bool) or not isinstance(request_id, str | int):
                raise RpcError(INVALID_REQUEST, "Invalid request: id must be a string or an integer")
            exchange.request_id = request_id
        if message.get("jsonrpc") != "2.0":
            raise RpcError(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')
        method = message.get("method")
        if not isinstance(method, str):
            what = "responses are not accepted by the server" if "result" in message or "error" in message else ""
            raise RpcError(INVALID_REQUEST, f'Invalid request: "method" must be a string{"; " + what if what else ""}')
        exchange.method = method
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object")
        exchange.params = params
        meta = params.get("_meta") if params is not None else None
        exchange.meta = meta if isinstance(meta, dict) else None
        if not is_request:
            return self._notification(exchange)

        header_version = exchange.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        meta_has_version = isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta
        if method == "initialize":
            if header_version in MODERN_PROTOCOL_VERSIONS:
                exchange.era = "modern"
                exchange.protocol_version = header_version
                raise RpcError(
                    METHOD_NOT_FOUND,
                    f"Method not found: initialize is not part of MCP {header_version}; call server/discover",
                )
            if meta_has_version:  # a modern envelope: the modern ladder judges it (it ends in -32601)
                exchange.era = "modern"
                return await self._modern_request(exchange)
            exchange.era = "legacy"
            return await self._legacy_request(exchange)
        if header_version in MODERN_PROTOCOL_VERSIONS or meta_has_version:
            exchange.era = "modern"
            return await self._modern_request(exchange)
        if header_version is None or header_version in LEGACY_VERSIONS:
            exchange.era = "legacy"
            exchange.protocol_version = header_version or LEGACY_DEFAULT_VERSION
            return await self._legacy_request(exchange)
        raise self._unsupported_version(header_version)

    # ------------------------------------------------------------ modern

    async def _modern_request(self, exchange: Exchange) -> Reply:
        meta = exchange.meta
        if meta is None:
            raise RpcError(
                INVALID_PARAMS,
                f"Invalid params: params._meta is required and must be an object carrying "
                f"{PROTOCOL_VERSION_META_KEY!r} and {CLIENT_CAPABILITIES_META_KEY!r}",
            )
        missing = [key for key in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY) if key not in meta]
        if missing:
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: params._meta is missing required key(s): {', '.join(missing)}"
            )
        if not isinstance(meta[CLIENT_CAPABILITIES_META_KEY], dict):
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: params._meta[{CLIENT_CAPABILITIES_META_KEY!r}] must be an object"
            )
        client_info = meta.get(CLIENT_INFO_META_KEY)
        if client_info is not None and not isinstance(client_info, dict):
            raise RpcError(INVALID_PARAMS, f"Invalid params: params._meta[{CLIENT_INFO_META_KEY!r}] must be an object")
        meta_version = meta[PROTOCOL_VERSION_META_KEY]
        exchange.protocol_version = meta_version if isinstance(meta_version, str) else None

        headers = exchange.headers
        if exchange.duplicated_headers:
            header = min(exchange.duplicated_headers)
            raise RpcError(HEADER_MISMATCH, f"Header mismatch: the {header} header appears more than once")
        if headers.get(MCP_PROTOCOL_VERSION_HEADER) != meta_version:
            raise _header_mismatch(
                "MCP-Protocol-Version",
                headers.get(MCP_PROTOCOL_VERSION_HEADER),
                f"params._meta[{PROTOCOL_VERSION_META_KEY!r}]",
                meta_version,
            )
        method = exchange.method
        if headers.get(MCP_METHOD_HEADER) != method:
            raise _header_mismatch("Mcp-Method", headers.get(MCP_METHOD_HEADER), "method", method)
        name_key = NAME_BEARING_METHODS.get(method)  # type: ignore[arg-type]
        if name_key is not None:
            body_value = exchange.params.get(name_key) if exchange.params else None  # type: ignore[union-attr]
            if isinstance(body_value, str):  # a missing or non-string name is the method's -32602, not a mismatch
                raw = headers.get(MCP_NAME_HEADER)
                if raw is None:
                    raise _header_mismatch("Mcp-Name", None, f"params.{name_key}", body_value)
                decoded = decode_header_value(raw)
                if decoded is None:
                    raise RpcError(
                        HEADER_MISMATCH,
                        f"Header mismatch: Mcp-Name header value {raw!r} is not valid '=?base64?...?=' "
                        "(canonical base64 of UTF-8)",
                    )
                if decoded != body_value:
                    raise _header_mismatch("Mcp-Name", decoded, f"params.{name_key}", body_value)
        if not isinstance(meta_version, str):
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: params._meta[{PROTOCOL_VERSION_META_KEY!r}] must be a string"
            )
        if meta_version not in MODERN_PROTOCOL_VERSIONS:
            raise self._unsupported_version(meta_version)
        return await self._route(exchange)

    def _unsupported_version(self, requested: Any) -> RpcError:
        # data.supported is what server/discover lists (the per-request versions); the handshake-era versions
        # are named in the message, for clients that can fall back to initialize.
        return RpcError(
            UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported protocol version {requested!r}; supported: {', '.join(MODERN_PROTOCOL_VERSIONS)} "
            f"per request, and {', '.join(LEGACY_VERSIONS)} through initialize",
            data={"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": requested},
        )

    # ------------------------------------------------------------ legacy

    async def _legacy_request(self, exchange: Exchange) -> Reply:
        try:
            if exchange.method in SESSION_METHODS:
                raise RpcError(
                    METHOD_NOT_FOUND,
                    f"Method not found: {exchange.method} needs a session to send resource updates on, and this "
                    "server is stateless; MCP 2026-07-28 clients subscribe with subscriptions/listen",
                )
            return await self._route(exchange)
        except RpcError as error:
            # JSON-RPC errors go back with HTTP 200 in the handshake era: a legacy client reads 404 as "session
            # expired" and would re-initialize in a loop.
            if not isinstance(error, AccessRefused):
                error.status = _JSON_STATUS_OK
            raise

    def _notification(self, exchange: Exchange) -> Reply:
        """Acknowledge a notification (202, no body): nothing here acts on one, and there is no session."""
        header_version = exchange.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if header_version is not None and header_version not in SUPPORTED_VERSIONS:
            raise self._unsupported_version(header_version)
        exchange.protocol_version = header_version
        exchange.status = 202
        return Reply(202, None)

    # ----------------------------------------------------------- methods

    async def _serve_as_caller(self, exchange: Exchange) -> Reply:
        """`_serve` behind Easy Auth: the caller parsed and current for a request that can observe it."""
        if exchange.method in self._caller_free:
            return await self._serve(exchange)
        exchange.caller = self._caller_of(exchange)
        token = serve_as(exchange.caller)
        try:
            return await self._serve(exchange)
        finally:
            stop_serving(token)

    @staticmethod
    def _caller_of(exchange: Exchange) -> Caller | None:
        try:
            return caller_from_headers(exchange.raw_headers)
        except CallerError as error:
            raise AccessRefused(INVALID_REQUEST, f"Unauthorized: {error}", status=401) from None

    async def _serve(self, exchange: Exchange) -> Reply:
        """The fast path's answer when it has one, else the kernel's."""
        fast = (self._fast if exchange.era == "modern" else self._fast_legacy).get(exchange.method)  # type: ignore[arg-type]
        if fast is not None:
            result = await fast(exchange)
            if result is not None:
                return self._result_reply(exchange, result)
        return self._result_reply(exchange, await self._via_kernel(exchange))

    async def _via_kernel(self, exchange: Exchange) -> bytes:
        if exchange.method in NAME_BEARING_METHODS:
            name = (exchange.params or {}).get(NAME_BEARING_METHODS[exchange.method])  # type: ignore[index]
            exchange.name = name if isinstance(name, str) else None
        modern = exchange.era == "modern"
        meta = exchange.meta or {}
        try:
            result = await self.kernel.call(
                exchange.method,  # type: ignore[arg-type]
                exchange.params,
                exchange.request_id,  # type: ignore[arg-type]
                exchange.protocol_version,  # type: ignore[arg-type]
                meta.get(CLIENT_INFO_META_KEY) if modern else None,
                meta.get(CLIENT_CAPABILITIES_META_KEY) if modern else None,
                dict(exchange.header_pairs()),
                exchange.sink,
            )
        except MCPError as error:
            raise RpcError(error.error.code, error.error.message, error.error.data) from error
        exchange.tool_error = result.get("isError") is True
        return _dumps(result)

    async def _cached_result(self, exchange: Exchange) -> bytes | None:
        if exchange.params is not None and exchange.params.get("cursor") is not None:
            # Every list fits one page, so no cursor was ever issued; any cursor is one we cannot honour.
            raise RpcError(INVALID_PARAMS, f"Invalid cursor: {exchange.method} results are never paginated here")
        return self._cached.get((exchange.method, exchange.protocol_version))  # type: ignore[arg-type]

    async def _tools_for_caller(self, exchange: Exchange) -> bytes:
        """``tools/list`` without the tools the caller may not call, ``cacheScope: "private"`` (module docstring)."""
        hidden = self._tool_roles.hidden_from(exchange.caller)  # type: ignore[union-attr]
        key = (exchange.protocol_version, hidden)
        scoped = self._scoped_tool_lists.get(key)
        if scoped is None:
            result = json.loads(await self._cached_result(exchange) or await self._via_kernel(exchange))
            result["tools"] = [tool for tool in result["tools"] if tool["name"] not in hidden]
            result["cacheScope"] = "private"
            scoped = _dumps(result)
            if self._sdk_chain_only:  # a team's middleware may answer differently each time: nothing to keep
                self._scoped_tool_lists[key] = scoped
        return scoped

    async def _initialize(self, exchange: Exchange) -> bytes | None:
        # Without params or protocolVersion (the seed sample's k6 script sends neither), the latest handshake
        # version: version negotiation lets a server answer the version it prefers.
        requested = (exchange.params or {}).get("protocolVersion")
        version = requested if requested in LEGACY_VERSIONS else LATEST_HANDSHAKE_VERSION
        exchange.protocol_version = version
        return self._cached.get(("initialize", version))

    async def _ping(self, exchange: Exchange) -> bytes | None:
        return b"{}"

    async def _call_tool(self, exchange: Exchange) -> bytes | None:
        params = exchange.params or {}
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: tools/call requires params.name (string)")
        exchange.name = name
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, f"Invalid params: arguments for tool {name} must be an object")
        if name not in self._tool_names:
            # The spec's -32602 (the SDK's own handler answers an isError result instead).
            raise RpcError(
                INVALID_PARAMS, f"Unknown tool: {name}", data={"name": name, "tools": sorted(self._tool_names)}
            )
        if self._tool_roles is not None and not self._tool_roles.allows(exchange.caller, name):
            raise self._role_refusal(exchange.caller, name)
        if exchange.era == "modern" and name in self._param_header_schemas:
            self._check_param_headers(exchange, name, arguments or {})
        gate = self._gates.get(name)
        if gate is not None:  # before the tool runs, on the fast path and the kernel's alike
            await self._admit(gate, exchange)
        if name not in self._fast_tools or params.get("inputResponses") is not None or params.get("requestState"):
            return None
        try:
            result = await self._server.call_tool(name, arguments or {}, self._context)
        except MCPError as error:
            raise RpcError(error.error.code, error.error.message, error.error.data) from error
        except Exception as error:  # noqa: BLE001 - any tool failure is an isError result, as in the SDK
            result = _tool_failure(name, error)
        exchange.tool_error = result.is_error is True
        if exchange.era == "modern":
            return self._with_server_info(result)
        return result.model_dump_json(by_alias=True, exclude_none=True, exclude={"result_type"}).encode()

    async def _admit(self, gate: Gate, exchange: Exchange) -> None:
        limiter: RateLimiter = self._rate_limiter  # type: ignore[assignment]
        refusal = await gate.admit(limiter.caller_key(exchange.caller, exchange.raw_headers, exchange.peer))
        if refusal is not None:
            record_refusal(refusal, exchange.caller.id if exchange.caller is not None else None)
            raise rate_refusal(refusal)

    def _role_refusal(self, caller: Caller | None, name: str) -> AccessRefused:
        needed = sorted(self._tool_roles.roles[name])  # type: ignore[union-attr]
        has = f"the caller has {', '.join(sorted(caller.roles)) or 'no app roles'}" if caller else "no one is signed in"
        return AccessRefused(
            INVALID_PARAMS,
            f"Forbidden: tool {name} needs the app role {' or '.join(needed)}; {has}",
            data={"name": name, "requiredRoles": needed},
            status=403 if caller else 401,
        )

    def _check_param_headers(self, exchange: Exchange, name: str, arguments: Mapping[str, Any]) -> None:
        """SEP-2243: each ``x-mcp-header`` argument must arrive as its ``Mcp-Param-*`` header too (-32020)."""
        rejection = validate_mcp_param_headers(
            self._param_header_schemas[name], arguments, _HeaderPairs(exchange.header_pairs())
        )
        if rejection is not None:
            raise RpcError(rejection.code, f"Header mismatch: {rejection.message}", rejection.data)

    def _with_server_info(self, result: BaseModel) -> bytes:
        """Serialize an SDK result with ``_meta`` serverInfo added (as the kernel stamps a 2026-07-28 result)."""
        if getattr(result, "meta", None) is None:
            # The common case, spliced as bytes: pydantic's own JSON, then the one key we add.
            dumped = result.model_dump_json(by_alias=True, exclude_none=True).encode()
            return b'{"_meta":' + self._result_meta_json + (b"," + dumped[1:] if dumped != b"{}" else b"}")
        body = result.model_dump(by_alias=True, exclude_none=True, mode="json")
        body["_meta"] = {**json.loads(self._result_meta_json), **body["_meta"]}
        return _dumps(body)

    # ------------------------------------------------------------ replies

    def _result_reply(self, exchange: Exchange, result: bytes) -> Reply:
        exchange.status = _JSON_STATUS_OK
        request_id = exchange.request_id
        # An integer id is its own JSON; json.dumps for it showed in every tools/call's profile.
        id_json = b"%d" % request_id if type(request_id) is int else _dumps(request_id)
        return Reply(_JSON_STATUS_OK, b'{"jsonrpc":"2.0","id":' + id_json + b',"result":' + result + b"}")

    def _error_reply(self, exchange: Exchange, error: RpcError) -> Reply:
        status = error.status if error.status is not None else ERROR_CODE_HTTP_STATUS.get(error.code, _JSON_STATUS_OK)
        exchange.error_code = error.code
        exchange.status = status
        body: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.data is not None:
            body["data"] = error.data
        reply: dict[str, Any] = {"jsonrpc": "2.0", "error": body}
        if exchange.request_id is not None:
            # The 2026-07-28 schema types the id as string | integer and does not require it, so an error
            # whose request id is unknown (parse error, invalid request) omits it rather than sending null.
            reply["id"] = exchange.request_id
        return Reply(status, _dumps(reply), headers=error.headers)


def _tool_failure(name: str, error: Exception) -> CallToolResult:
    """A tool's exception as the isError result ``MCPServer._handle_call_tool`` makes of it, logged as it logs it."""
    if isinstance(error, ToolError) and not isinstance(error, UnexpectedToolError):
        if isinstance(error.__cause__, ValidationError):
            fields = sorted({".".join(str(part) for part in err["loc"]) for err in error.__cause__.errors()})
            logger.info("Tool %r rejected arguments: %r", name, fields)
        else:
            logger.info("Tool %r failed: %r", name, str(error))
    else:
        logger.exception("Tool %r raised an unexpected exception", name, exc_info=error)
    return CallToolResult(content=[TextContent(type="text", text=str(error))], is_error=True)


def chain(handler: MessageHandler, middleware: list[MessageMiddleware]) -> MessageHandler:
    """Wrap ``handler`` in ``middleware``, the first outermost."""
    for wrapper in reversed(middleware):
        handler = _bind(wrapper, handler)
    return handler


def _bind(wrapper: MessageMiddleware, inner: MessageHandler) -> MessageHandler:
    # A plain function handing on the wrapper's awaitable, not a coroutine awaiting it: one coroutine frame less
    # per message and middleware.
    def bound(exchange: Exchange) -> Awaitable[Reply]:
        return wrapper(exchange, inner)

    return bound
