"""JSON-RPC dispatch for one MCP message: the modern 2026-07-28 ladder and the legacy handshake era.

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

Responses that never change (server/discover, tools/list, resources/list,
resources/templates/list, prompts/list, initialize) are serialized once at start-up; a
request pays only for splicing its id in.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    decode_header_value,
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
    CallToolRequestParams,
)
from mcp.types.version import LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from app.request_scope import client_capabilities

logger = logging.getLogger(__name__)

LEGACY_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
"""Handshake-era versions served statelessly. 2024-11-05 predates Streamable HTTP (it used HTTP+SSE), so an
``initialize`` asking for it is answered with the latest handshake version, as version negotiation allows."""
SUPPORTED_VERSIONS: tuple[str, ...] = (*reversed(MODERN_PROTOCOL_VERSIONS), *LEGACY_VERSIONS)
LIST_TTL_MS = 300_000
"""Cache hint for discover and the lists: five minutes; the catalogue changes only with a deployment."""
READ_TTL_MS = 300_000

_JSON_STATUS_OK = 200


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Exchange:
    """One JSON-RPC message on its way through the server.

    The transport fills ``headers`` and ``message`` (or ``parse_error``); the
    dispatcher fills the rest as it decides, so a wrapper reading the exchange
    after the call sees the outcome.
    """

    headers: Mapping[str, str]
    """Routing headers by lowercase name, values with surrounding whitespace removed."""
    duplicated_headers: frozenset[str] = frozenset()
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
    """Tool name (tools/call) or resource URI (resources/read)."""
    error_code: int | None = None
    tool_error: bool = False
    status: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes | None
    """None: no body (202 for a notification)."""


MessageHandler = Callable[[Exchange], Awaitable[Reply]]
MessageMiddleware = Callable[[Exchange, MessageHandler], Awaitable[Reply]]


class RpcError(Exception):
    """A JSON-RPC error to send back; ``status`` overrides the table's HTTP status."""

    def __init__(self, code: int, message: str, data: Any = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status


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
    """Decides every MCP message; tools and resources run on the SDK's `MCPServer`."""

    def __init__(self, server: MCPServer, server_info: dict[str, str], instructions: str | None) -> None:
        self._server = server
        # One context for every call: this service's tools and resources use no per-request context (no
        # progress, no elicitation, no notifications), and building a fresh one costs a third of a call_tool.
        self._context: Context = Context(mcp_server=server)
        self._server_info = server_info
        self._instructions = instructions
        self._result_meta = {SERVER_INFO_META_KEY: server_info}
        self._result_meta_json = _dumps(self._result_meta)
        self._tool_names: frozenset[str] = frozenset()
        self._cached: dict[str, bytes] = {}
        self._modern: dict[str, Callable[[Exchange], Awaitable[bytes]]] = {
            "server/discover": self._cached_result("server/discover"),
            "tools/list": self._cached_result("tools/list"),
            "resources/list": self._cached_result("resources/list"),
            "resources/templates/list": self._cached_result("resources/templates/list"),
            "tools/call": self._call_tool,
            "resources/read": self._read_resource,
            "prompts/list": self._cached_result("prompts/list"),
            "prompts/get": self._get_prompt,
        }
        self._legacy: dict[str, Callable[[Exchange], Awaitable[bytes]]] = {
            **{k: v for k, v in self._modern.items() if k != "server/discover"},
            "initialize": self._initialize,
            "ping": self._ping,
        }

    async def start(self) -> None:
        """Ask the SDK for the catalogue once and serialize the results that never change."""
        tools = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in await self._server.list_tools()]
        resources = [
            r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in await self._server.list_resources()
        ]
        templates = [
            t.model_dump(by_alias=True, exclude_none=True, mode="json")
            for t in await self._server.list_resource_templates()
        ]
        prompts = [
            p.model_dump(by_alias=True, exclude_none=True, mode="json") for p in await self._server.list_prompts()
        ]
        self._tool_names = frozenset(t["name"] for t in tools)
        self._prompt_names = frozenset(p["name"] for p in prompts)
        # Static catalogue: nothing ever changes while a process runs, so no list-changed notifications.
        capabilities = {
            "tools": {"listChanged": False},
            "resources": {"subscribe": False, "listChanged": False},
            "prompts": {"listChanged": False},
        }
        cache_hints = {"ttlMs": LIST_TTL_MS, "cacheScope": "public"}
        discover: dict[str, Any] = {
            "resultType": "complete",
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": capabilities,
            **({"instructions": self._instructions} if self._instructions else {}),
            "_meta": self._result_meta,
            **cache_hints,
        }
        results = {
            "server/discover": discover,
            "tools/list": {"resultType": "complete", "tools": tools, "_meta": self._result_meta, **cache_hints},
            "resources/list": {
                "resultType": "complete",
                "resources": resources,
                "_meta": self._result_meta,
                **cache_hints,
            },
            "resources/templates/list": {
                "resultType": "complete",
                "resourceTemplates": templates,
                "_meta": self._result_meta,
                **cache_hints,
            },
            "prompts/list": {"resultType": "complete", "prompts": prompts, "_meta": self._result_meta, **cache_hints},
        }
        self._cached = {method: _dumps(result) for method, result in results.items()}
        self._initialize_results = {
            version: _dumps(
                {
                    "protocolVersion": version,
                    "capabilities": capabilities,
                    "serverInfo": self._server_info,
                    **({"instructions": self._instructions} if self._instructions else {}),
                }
            )
            for version in LEGACY_VERSIONS
        }

    # ---------------------------------------------------------------- entry

    async def handle(self, exchange: Exchange) -> Reply:
        """Decide one message; never raises (an unexpected failure becomes -32603 and is logged)."""
        if not self._cached:  # served without an ASGI lifespan (some test harnesses): start on first use
            await self.start()
        try:
            return await self._handle(exchange)
        except RpcError as error:
            return self._error_reply(exchange, error)
        except Exception:
            logger.exception("internal error handling %s", exchange.method)
            return self._error_reply(exchange, RpcError(INTERNAL_ERROR, "Internal error", status=500))

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
            if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
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
            exchange.protocol_version = header_version or "2025-03-26"
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

        handler = self._modern.get(method)  # type: ignore[arg-type]
        if handler is None:
            raise RpcError(
                METHOD_NOT_FOUND, f"Method not found: {method!r} is not served at protocol version {meta_version}"
            )
        return self._result_reply(exchange, await handler(exchange))

    def _unsupported_version(self, requested: Any) -> RpcError:
        return RpcError(
            UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported protocol version {requested!r}; supported: {', '.join(SUPPORTED_VERSIONS)}",
            data={"supported": list(SUPPORTED_VERSIONS), "requested": requested},
        )

    # ------------------------------------------------------------ legacy

    async def _legacy_request(self, exchange: Exchange) -> Reply:
        handler = self._legacy.get(exchange.method)  # type: ignore[arg-type]
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {exchange.method!r}", status=_JSON_STATUS_OK)
        try:
            return self._result_reply(exchange, await handler(exchange))
        except RpcError as error:
            error.status = _JSON_STATUS_OK
            raise

    async def _initialize(self, exchange: Exchange) -> bytes:
        requested = (exchange.params or {}).get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: initialize requires params.protocolVersion (string)")
        version = requested if requested in LEGACY_VERSIONS else LATEST_HANDSHAKE_VERSION
        exchange.protocol_version = version
        return self._initialize_results[version]

    async def _ping(self, exchange: Exchange) -> bytes:
        return b"{}"

    def _notification(self, exchange: Exchange) -> Reply:
        """Acknowledge a notification (202, no body): nothing here acts on one, and there is no session."""
        header_version = exchange.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if header_version is not None and header_version not in SUPPORTED_VERSIONS:
            raise self._unsupported_version(header_version)
        exchange.protocol_version = header_version
        exchange.status = 202
        return Reply(202, None)

    # ----------------------------------------------------------- methods

    def _cached_result(self, method: str) -> Callable[[Exchange], Awaitable[bytes]]:
        async def cached(exchange: Exchange) -> bytes:
            if exchange.params is not None and exchange.params.get("cursor") is not None:
                # Every list fits one page, so no cursor was ever issued; any cursor is one we cannot honour.
                raise RpcError(INVALID_PARAMS, f"Invalid cursor: {method} results are never paginated here")
            return self._cached[method]

        return cached

    async def _call_tool(self, exchange: Exchange) -> bytes:
        params = exchange.params or {}
        name, arguments = _name_and_arguments(exchange, "tool")
        if arguments is None:
            arguments = {}
        if name not in self._tool_names:
            raise RpcError(
                INVALID_PARAMS,
                f"Unknown tool: {name}",
                data={"name": name, "tools": sorted(self._tool_names)},
            )
        context = self._context
        if params.get("inputResponses") is not None or params.get("requestState") is not None:
            # A multi-round retry (2026-07-28): the tool reads the answers from a context of its own.
            if exchange.era != "modern":
                raise RpcError(INVALID_PARAMS, "Invalid params: inputResponses need a 2026-07-28 request")
            try:
                input_params = CallToolRequestParams.model_validate(params)
            except ValidationError as error:
                raise RpcError(INVALID_PARAMS, f"Invalid params: {_problems(error)}") from error
            context = Context(mcp_server=self._server, input_params=input_params)
        capabilities = exchange.meta.get(CLIENT_CAPABILITIES_META_KEY) if exchange.era == "modern" else None
        scope = client_capabilities.set(capabilities)  # type: ignore[union-attr]
        try:
            result = await self._server.call_tool(name, arguments, context)
        except MCPError as error:
            raise RpcError(error.error.code, error.error.message, error.error.data) from error
        except ToolError as error:
            # Tool failures are results (isError) so the model can see and correct them, per the spec.
            exchange.tool_error = True
            return _dumps(
                {
                    "resultType": "complete",
                    "content": [{"type": "text", "text": self._tool_error_text(name, error)}],
                    "isError": True,
                    "_meta": self._result_meta,
                }
            )
        finally:
            client_capabilities.reset(scope)
        exchange.tool_error = bool(getattr(result, "is_error", False))
        return self._with_server_info(result)

    @staticmethod
    def _tool_error_text(name: str, error: ToolError) -> str:
        cause = error.__cause__
        if isinstance(cause, ValidationError):
            return f"Invalid arguments for tool {name}: {_problems(cause)}"
        if isinstance(error, UnexpectedToolError):
            logger.error("tool %s failed unexpectedly", name, exc_info=error.__cause__ or error)
            return f"Tool {name} failed unexpectedly; the error was logged on the server"
        return str(error)

    async def _get_prompt(self, exchange: Exchange) -> bytes:
        name, arguments = _name_and_arguments(exchange, "prompt")
        if name not in self._prompt_names:
            raise RpcError(
                INVALID_PARAMS, f"Unknown prompt: {name}", data={"name": name, "prompts": sorted(self._prompt_names)}
            )
        try:
            result = await self._server.get_prompt(name, arguments, self._context)
        except MCPError as error:
            raise RpcError(error.error.code, error.error.message, error.error.data) from error
        except ValueError as error:
            root = error
            while root.__cause__ is not None:  # the SDK wraps the prompt's own error in "Error rendering prompt"
                root = root.__cause__
            problem = _problems(root) if isinstance(root, ValidationError) else str(root)
            raise RpcError(INVALID_PARAMS, f"Invalid arguments for prompt {name}: {problem}") from error
        return self._with_server_info(result)

    def _with_server_info(self, result: BaseModel) -> bytes:
        """Serialize an SDK result with ``_meta`` serverInfo added."""
        if getattr(result, "meta", None) is None:
            # The common case, spliced as bytes: pydantic's own JSON, then the one key we add.
            dumped = result.model_dump_json(by_alias=True, exclude_none=True).encode()
            return b'{"_meta":' + self._result_meta_json + (b"," + dumped[1:] if dumped != b"{}" else b"}")
        body = result.model_dump(by_alias=True, exclude_none=True, mode="json")
        body["_meta"] = {**body["_meta"], **self._result_meta}
        return _dumps(body)

    async def _read_resource(self, exchange: Exchange) -> bytes:
        uri = (exchange.params or {}).get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: resources/read requires params.uri (string)")
        exchange.name = uri
        try:
            contents = await self._server.read_resource(uri, self._context)
        except ResourceNotFoundError as error:
            raise RpcError(INVALID_PARAMS, f"Resource not found: {uri}", data={"uri": uri}) from error
        except ResourceError as error:
            logger.error("reading resource %s failed", uri, exc_info=error.__cause__ or error)
            raise RpcError(INTERNAL_ERROR, f"Reading resource {uri} failed", data={"uri": uri}, status=500) from error
        except MCPError as error:
            raise RpcError(error.error.code, error.error.message, error.error.data) from error
        items = []
        for item in contents:  # type: ignore[union-attr]
            if isinstance(item.content, bytes):
                items.append(
                    {
                        "uri": uri,
                        "mimeType": item.mime_type or "application/octet-stream",
                        "blob": base64.b64encode(item.content).decode(),
                    }
                )
            else:
                items.append({"uri": uri, "mimeType": item.mime_type or "text/plain", "text": item.content})
        return _dumps(
            {
                "resultType": "complete",
                "contents": items,
                "_meta": self._result_meta,
                "ttlMs": READ_TTL_MS,
                "cacheScope": "public",
            }
        )

    # ------------------------------------------------------------ replies

    def _result_reply(self, exchange: Exchange, result: bytes) -> Reply:
        exchange.status = _JSON_STATUS_OK
        request_id = exchange.request_id
        # An integer id is its own JSON; json.dumps for it cost 5% of a tools/call.
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
        return Reply(status, _dumps(reply))


def _name_and_arguments(exchange: Exchange, kind: str) -> tuple[str, dict[str, Any] | None]:
    """``params.name`` (recorded on the exchange) and ``params.arguments`` of tools/call or prompts/get, checked."""
    params = exchange.params or {}
    name = params.get("name")
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {exchange.method} requires params.name (string)")
    exchange.name = name
    arguments = params.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, f"Invalid params: arguments for {kind} {name} must be an object")
    return name, arguments


def _problems(error: ValidationError) -> str:
    """``arg: message (got value)`` per failed argument: names the input without pydantic's boilerplate."""
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or 'arguments'}: {issue['msg']}"
        + (f" (got {issue['input']!r})" if issue.get("type") != "missing" else "")
        for issue in error.errors(include_url=False)
    )


def chain(handler: MessageHandler, middleware: list[MessageMiddleware]) -> MessageHandler:
    """Wrap ``handler`` in ``middleware``, the first outermost."""
    for wrapper in reversed(middleware):
        handler = _bind(wrapper, handler)
    return handler


def _bind(wrapper: MessageMiddleware, inner: MessageHandler) -> MessageHandler:
    async def bound(exchange: Exchange) -> Reply:
        return await wrapper(exchange, inner)

    return bound
