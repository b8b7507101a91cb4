"""Traces and metrics for MCP messages, exported to Application Insights.

Telemetry is on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.
Otherwise nothing is imported beyond the standard library (no OpenTelemetry,
no Azure exporter) and the transport's handler is left unwrapped, so a local
start and every request pay nothing for it.

When on, ``azure-monitor-opentelemetry`` (the Azure Monitor OpenTelemetry
distro) exports, per MCP message, one SERVER span (-> a ``requests`` row)
that continues the caller's trace from ``params._meta.traceparent`` /
``tracestate`` (and ``baggage``), following the OpenTelemetry MCP semantic
conventions: span name ``"{mcp.method.name} {target}"``, attributes
``mcp.method.name``, ``gen_ai.tool.name`` (tools/call), ``gen_ai.prompt.name``
(prompts/get), ``mcp.resource.uri`` (resources/read), ``mcp.protocol.version``,
``jsonrpc.request.id``, and on failure ``error.type`` (the JSON-RPC error code
as text, ``tool_error`` for an ``isError`` tool result, or the exception
class) plus ``rpc.response.status_code`` and span status ERROR. The HTTP
span of the transport, if any, is linked, not made the parent (MCP and HTTP
contexts are independent). Metric: histogram
``mcp.server.operation.duration`` (seconds) by method, tool and ``error.type``
(absent = success): its count is the tool call count.

Resource: ``service.name`` = ``"mcp-server-<slot>"`` with slot =
``MCP_SLOT_NAME`` (production / staging / local) -> ``cloud_RoleName``, so
the workbook splits production from staging; ``service.instance.id`` =
``WEBSITE_INSTANCE_ID`` -> ``cloud_RoleInstance``. These names are the contract
with ``components/workbook.py`` (repeated there, since ``components`` never
imports ``app``; ``tests/app/test_telemetry.py`` checks they agree).

Why a wrapper of our own: the ``mcp`` SDK's ``OpenTelemetryMiddleware`` (same
attribute names) runs only inside the SDK's dispatcher, which the app's lean
stateless transport bypasses for speed; so the span is made here, around the
transport's one-message handler.

The FastAPI instrumentation is off: /health is probed by App Service on every
instance, and a request row per probe is cost without insight; instance
liveness shows in the performance counters the distro sends per instance.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"

# --- contract with components/workbook.py ------------------------------------
ATTR_METHOD = "mcp.method.name"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROTOCOL_VERSION = "mcp.protocol.version"
ATTR_REQUEST_ID = "jsonrpc.request.id"
ATTR_ERROR_TYPE = "error.type"
ATTR_RPC_STATUS_CODE = "rpc.response.status_code"
SERVICE_NAME_PREFIX = "mcp-server-"
METRIC_OPERATION_DURATION = "mcp.server.operation.duration"

# --- further semantic-convention attributes ----------------------------------
ATTR_PROMPT = "gen_ai.prompt.name"
ATTR_RESOURCE_URI = "mcp.resource.uri"
ATTR_OPERATION = "gen_ai.operation.name"
TOOL_ERROR = "tool_error"
_PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
# Bucket boundaries the MCP semantic conventions recommend for operation durations.
_DURATION_BUCKETS_S = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
# Client-chosen strings become span names and metric dimensions; cap them.
_MAX_NAME = 128

R = TypeVar("R")
Handler = Callable[..., Awaitable[R]]


def service_name(environ: Mapping[str, str] = os.environ) -> str:
    """``mcp-server-<MCP_SLOT_NAME>``: the cloud role name per slot."""
    return SERVICE_NAME_PREFIX + (environ.get("MCP_SLOT_NAME") or "local")


def resource_attributes(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    slot = environ.get("MCP_SLOT_NAME") or "local"
    return {
        "service.name": service_name(environ),
        "service.instance.id": environ.get("WEBSITE_INSTANCE_ID") or "local",
        "deployment.environment.name": slot,
    }


def setup(environ: Mapping[str, str] = os.environ) -> McpInstrumentation | None:
    """Configure Azure Monitor export if a connection string is set; else return None.

    Call once per process (each uvicorn worker imports the app and calls it).
    """
    connection_string = environ.get(CONNECTION_STRING_ENV)
    if not connection_string:
        return None
    # Imported here, not at module top: without a connection string the app
    # must not pay for importing OpenTelemetry and the exporter.
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.resources import Resource

    # The distro also runs the Azure VM detector, which probes the instance
    # metadata endpoint (seconds of start-up delay off a VM); this runs on App Service.
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
    configure_azure_monitor(
        connection_string=connection_string,
        resource=Resource.create(resource_attributes(environ)),
        instrumentation_options={"fastapi": {"enabled": False}},
    )
    return McpInstrumentation(trace.get_tracer_provider(), metrics.get_meter_provider())


def instrument(handler: Handler[R], instrumentation: McpInstrumentation | None) -> Handler[R]:
    """``handler`` wrapped for telemetry, or ``handler`` itself when telemetry is off."""
    return handler if instrumentation is None else instrumentation.wrap(handler)


def _capped(value: Any) -> str:
    return str(value)[:_MAX_NAME]


def _request_attributes(message: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Span name and attributes for one JSON-RPC message (per the MCP semantic conventions)."""
    method = _capped(message.get("method") or "")
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    attributes = {ATTR_METHOD: method, "network.transport": "tcp", "network.protocol.name": "http"}
    target = None
    if method == "tools/call" and params.get("name") is not None:
        target = attributes[ATTR_TOOL] = _capped(params["name"])
        attributes[ATTR_OPERATION] = "execute_tool"
    elif method == "prompts/get" and params.get("name") is not None:
        target = attributes[ATTR_PROMPT] = _capped(params["name"])
    elif method == "resources/read" and params.get("uri") is not None:
        attributes[ATTR_RESOURCE_URI] = str(params["uri"])  # high cardinality: attribute only, never the name
    meta = params.get("_meta")
    version = meta.get(_PROTOCOL_VERSION_META) if isinstance(meta, Mapping) else None
    if version is None and method == "initialize":
        version = params.get("protocolVersion")
    if version is not None:
        attributes[ATTR_PROTOCOL_VERSION] = _capped(version)
    if message.get("id") is not None:
        attributes[ATTR_REQUEST_ID] = str(message["id"])
    return (f"{method} {target}" if target else method), attributes


def _failure(response: Any) -> tuple[str, str | None, str] | None:
    """(error.type, JSON-RPC code, description) if the response reports a failure."""
    if not isinstance(response, Mapping):
        return None
    error = response.get("error")
    if isinstance(error, Mapping):
        code = str(error.get("code"))
        return code, code, str(error.get("message") or "")
    result = response.get("result")
    if isinstance(result, Mapping) and result.get("isError") is True:
        return TOOL_ERROR, None, "tool returned isError"
    return None


class McpInstrumentation:
    """Wraps the transport's "handle one JSON-RPC message" coroutine with a span and a metric."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        self._context, self._propagate, self._trace = context, propagate, trace
        self._Link, self._SpanKind, self._Status, self._StatusCode = Link, SpanKind, Status, StatusCode
        self._tracer = tracer_provider.get_tracer("app.telemetry")
        self._duration = meter_provider.get_meter("app.telemetry").create_histogram(
            METRIC_OPERATION_DURATION,
            unit="s",
            description="Duration of MCP requests handled by the server",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S,
        )

    def wrap(
        self, handler: Handler[R], response_of: Callable[[R], Any] = lambda response: response
    ) -> Handler[R]:
        """Instrument ``handler(message, ...)``; ``response_of`` maps its return value to the JSON-RPC response."""

        @functools.wraps(handler)
        async def instrumented(message: Any, *args: Any, **kwargs: Any) -> R:
            if not isinstance(message, Mapping):  # not a JSON-RPC object: nothing to name a span after
                return await handler(message, *args, **kwargs)
            name, attributes = _request_attributes(message)
            parent, links = self._parent_and_links(message)
            started = time.perf_counter()
            error_type = None
            with self._tracer.start_as_current_span(
                name,
                context=parent,
                kind=self._SpanKind.SERVER,
                attributes=attributes,
                links=links,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await handler(message, *args, **kwargs)
                except BaseException as exc:
                    error_type = type(exc).__qualname__
                    span.record_exception(exc)
                    span.set_attribute(ATTR_ERROR_TYPE, error_type)
                    span.set_status(self._Status(self._StatusCode.ERROR, str(exc)[:_MAX_NAME]))
                    raise
                else:
                    failure = _failure(response_of(response))
                    if failure is not None:
                        error_type, code, description = failure
                        span.set_attribute(ATTR_ERROR_TYPE, error_type)
                        if code is not None:
                            span.set_attribute(ATTR_RPC_STATUS_CODE, code)
                        span.set_status(self._Status(self._StatusCode.ERROR, description[:_MAX_NAME]))
                    return response
                finally:
                    metric_attributes = {ATTR_METHOD: attributes[ATTR_METHOD]}
                    if ATTR_TOOL in attributes:
                        metric_attributes[ATTR_TOOL] = attributes[ATTR_TOOL]
                    if error_type is not None:
                        metric_attributes[ATTR_ERROR_TYPE] = error_type
                    self._duration.record(time.perf_counter() - started, metric_attributes)

        return instrumented

    def _parent_and_links(self, message: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """The caller's context from ``params._meta`` as parent, linking the ambient (transport) span.

        Without trace context in ``_meta`` the span simply continues the ambient context.
        """
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        carrier = {}
        if isinstance(meta, Mapping):
            carrier = {key: meta[key] for key in ("traceparent", "tracestate", "baggage") if isinstance(meta.get(key), str)}
        if not carrier:
            return None, []
        # Extract into an empty context: the parent is the caller's span, never the transport's.
        parent = self._propagate.extract(carrier, context=self._context.Context())
        if not self._trace.get_current_span(parent).get_span_context().is_valid:
            return None, []  # malformed traceparent: continue the ambient context rather than orphan the span
        ambient = self._trace.get_current_span().get_span_context()
        return parent, [self._Link(ambient)] if ambient.is_valid else []
