"""The SDK's own request kernel, driven from our transport: every feature of an `MCPServer`.

This module is the bridge to the ``mcp`` SDK's internals: the only place in
``app`` that imports or reads its private names (the single-exchange dispatch
context, the OpenTelemetry middleware's module, ``MCPServer``'s low-level
server, tool manager and extensions, a tool's context parameters, the
request-state boundary's policy). Everything else in the app reaches them
through what this module exports. Each name it relies on, with the shape it
relies on, is listed in `app.private_surface` (``MCP_SDK``), which
tests/app/test_private_surface.py checks against the installed SDK, and
pyproject.toml pins the SDK to the minor release those names were read from.

A request that the dispatcher's fast path does not answer (`app.protocol`)
runs here exactly as on the SDK's transport: `mcp.server.runner.serve_one`
builds the per-request `ServerRequestContext` (and so the tool's `Context`:
request id, progress token, client info and capabilities, ``_meta``, the
log-level opt-in, ``input_responses`` / ``request_state``), runs the server's
middleware chain (the request-state boundary included) and shapes the result
for the request's protocol version. What this module adds is only what a
transport owns:

- The dispatch context (`ExchangeContext`, the SDK's single-exchange context
  with our response as its sink): progress and log notifications about this
  request become SSE events on this request's own response; nothing can reach
  another request's stream, because each request has its own sink.
- Deferred SSE, as the SDK's transport does it: a request that emits nothing
  is answered ``application/json`` with the error table's HTTP status; the
  first notification commits ``text/event-stream``; a handler silent for
  ``KEEPALIVE_S`` commits it too and is pinged every ``KEEPALIVE_S`` so a
  proxy's idle timeout (App Service's front end: 230 s) cannot cut it off.
  A client whose ``Accept`` does not list ``text/event-stream`` gets no
  notifications (as in the SDK's JSON-response mode).
- No back-channel: a server-to-client request (sampling, elicitation, roots
  through ``ctx.session``) cannot be delivered by a stateless server, so it
  fails with `StatelessBackChannelError`, which says so and points at the
  2026-07-28 ``input_required`` flow that replaces it.

`host_server` adapts a team's server to the fleet once, before serving:

- its ``requestState`` is sealed with the shared ring ``MCP_REQUEST_STATE_KEYS``
  (so a round started on one instance completes on any other, in either slot);
- the SDK's OpenTelemetry middleware is taken out of the chain, because the
  host records one span per message for every path (`app.telemetry`), the
  fast path included; keeping both would record each kernel request twice;
- its ``requestState`` is bound to the caller (`app.identity.current_caller`)
  besides whatever principal the server's own policy binds, so a round
  started by one caller is refused for another (-32602, as for any state that
  does not verify) and completes for the same caller on any instance;
- `prompt_argument_errors` joins the chain, innermost: the SDK reports a
  prompt's bad or missing arguments (and an unknown prompt) as an internal
  error, where the spec's answer is -32602 naming the argument.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server._streamable_http_modern import _SingleExchangeDispatchContext
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import AESGCMRequestStateCodec, RequestStateBoundary, RequestStateSecurity
from mcp.server.runner import modern_error_data, serve_one
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, ErrorData
from pydantic import ValidationError

from app.handles import KeyRing
from app.identity import current_caller
from app.sse import EventSink

KEEPALIVE_S = 15.0
"""Seconds of handler silence before SSE is committed and between keep-alive pings (the SDK's figure)."""


class StatelessBackChannelError(NoBackChannelError):
    """A server-to-client request from a handler: a stateless server has no session to carry it."""

    def __init__(self, method: str) -> None:
        MCPError.__init__(
            self,
            code=INVALID_REQUEST,
            message=(
                f"Cannot send {method!r}: this server is stateless, so it has no session on which to send the client "
                "a request. MCP 2026-07-28 clients get this feature through input_required (the tool returns "
                "inputRequests and the client retries with inputResponses)."
            ),
        )
        self.method = method


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a handler can see of the HTTP request: `Context.headers` reads ``headers`` (lowercase names)."""

    headers: Mapping[str, str]


@dataclass
class ExchangeContext(_SingleExchangeDispatchContext):
    """The SDK's single-exchange dispatch context, with a stateless server's back-channel refusal.

    Reused rather than rewritten: its ``notify`` and ``progress`` are the
    SDK's rules for what a request may stream (progress only for a request
    with a ``progressToken``; frames as the SDK's transport writes them).
    """

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise StatelessBackChannelError(method)


class Kernel:
    """Runs one request on the SDK's kernel for ``server`` (an `MCPServer` adapted by `host_server`)."""

    def __init__(self, server: MCPServer) -> None:
        # The SDK's kernel (serve_one) takes the low-level Server an MCPServer wraps; MCPServer has no public
        # accessor for it, and its own transports read the same attribute.
        self.lowlevel = server._lowlevel_server
        self.lifespan_state: Any = None

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        request_id: str | int,
        version: str,
        client_info: Any,
        client_capabilities: Any,
        headers: Mapping[str, str],
        sink: EventSink | None,
    ) -> dict[str, Any]:
        """The result dict; raises `MCPError` with the wire error (anything unexpected is logged, -32603)."""
        dctx = ExchangeContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False, headers=headers),
            request_id=request_id,
            message_metadata=ServerMessageMetadata(request_context=RequestInfo(headers)),
            progress_token=progress_token_from_params(params),
            sink=sink,
        )
        connection = Connection.from_envelope(version, client_info, client_capabilities)
        run = serve_one(self.lowlevel, dctx, method, params, connection=connection, lifespan_state=self.lifespan_state)
        try:
            if sink is None:
                return await run
            return await _with_keepalive(run, sink)
        except Exception as error:
            data: ErrorData = modern_error_data(error)
            raise MCPError(code=data.code, message=data.message, data=data.data) from error


async def _with_keepalive(run, sink: EventSink) -> dict[str, Any]:
    task = asyncio.ensure_future(run)
    try:
        while True:
            done, _ = await asyncio.wait((task,), timeout=KEEPALIVE_S)
            if done:
                return task.result()
            await sink.ping()
    finally:
        if not task.done():  # our caller was cancelled (shutdown): so is the handler
            task.cancel()


def has_extensions(server: MCPServer) -> bool:
    """Whether ``server`` has extensions registered: an extension may intercept any tool call."""
    return bool(server._extensions)


def context_free_tools(server: MCPServer) -> frozenset[str]:
    """Names of ``server``'s tools that cannot observe their request (see `context_free`)."""
    return frozenset(tool.name for tool in server._tool_manager.list_tools() if context_free(tool))


def context_free(tool: Any) -> bool:
    """A tool that cannot observe its request: no `Context` parameter, no ``Resolve(...)`` parameter (a resolver
    reads the context: capabilities, elicitation, sampling), and it never asks for input."""
    returns = getattr(tool.fn, "__annotations__", {}).get("return")
    return tool.context_kwarg is None and not tool.resolved_params and "InputRequiredResult" not in str(returns)


async def prompt_argument_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """``prompts/get`` failures the SDK raises as ``ValueError`` become -32602 naming the prompt and the problem."""
    if ctx.method != "prompts/get":
        return await call_next(ctx)
    try:
        return await call_next(ctx)
    except MCPError:
        raise
    except ValueError as error:
        root: BaseException = error
        while root.__cause__ is not None:  # the SDK wraps the prompt's own error in "Error rendering prompt"
            root = root.__cause__
        name = (ctx.params or {}).get("name")
        problem = problems(root) if isinstance(root, ValidationError) else str(root)
        raise MCPError(code=INVALID_PARAMS, message=f"Invalid params for prompt {name}: {problem}") from error


def problems(error: ValidationError) -> str:
    """``arg: message (got value)`` per failed argument: names the input without pydantic's boilerplate."""
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or 'arguments'}: {issue['msg']}"
        + (f" (got {issue['input']!r})" if issue.get("type") != "missing" else "")
        for issue in error.errors(include_url=False)
    )


PrincipalBinding = Callable[[ServerRequestContext[Any, Any]], str | None]


def _with_caller(own: PrincipalBinding | None) -> PrincipalBinding:
    """The server's own principal binding, joined by the Easy Auth caller when there is one."""

    def bind(ctx: ServerRequestContext[Any, Any]) -> str | None:
        caller = current_caller()
        theirs = own(ctx) if own is not None else None
        if caller is None:
            return theirs
        return caller.principal if theirs is None else json.dumps([caller.principal, theirs])

    return bind


def host_server(server: MCPServer, request_state_keys: KeyRing) -> MCPServer:
    """Adapt ``server`` to a fleet, in place (see the module docstring); returns it.

    The server's request-state policy keeps its lifetime, audience and
    principal binding (joined by the caller's); only the built-in AES-GCM
    codec's key (per-process by default, or a key held in the team's code) is
    replaced by the shared ring. A server that brings its own codec (e.g.
    backed by a KMS) keeps it.
    """
    chain = server.middleware
    chain[:] = [m for m in chain if not isinstance(m, OpenTelemetryMiddleware)]
    for position, middleware in enumerate(chain):
        if not isinstance(middleware, RequestStateBoundary):
            continue
        security: RequestStateSecurity = middleware._security
        # A codec of the team's own is kept; the built-in one (a per-process key) gives way to the shared ring.
        sealing = (
            {"keys": list(request_state_keys.keys.values())}
            if isinstance(security.codec, AESGCMRequestStateCodec)
            else {"codec": security.codec}
        )
        hosted = RequestStateSecurity(
            **sealing,
            ttl=security.ttl,
            bind_principal=_with_caller(security.bind_principal),
            audience=security.audience,
        )
        chain[position] = RequestStateBoundary(hosted, default_audience=middleware._audience)
    if prompt_argument_errors not in chain:
        chain.append(prompt_argument_errors)
    return server
