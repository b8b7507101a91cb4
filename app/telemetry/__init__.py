"""Traces and metrics for MCP messages, exported to Application Insights.

Telemetry is on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.
Otherwise nothing is imported beyond the standard library (no OpenTelemetry
SDK, no Azure exporter: importing the distro alone takes seconds) and no
middleware is installed, so a local start and every request pay nothing.

When on, ``azure-monitor-opentelemetry`` (the Azure Monitor OpenTelemetry
distro) exports, per MCP message, one SERVER span (-> a ``requests`` row)
that continues the caller's trace from ``params._meta.traceparent`` /
``tracestate`` (and ``baggage``), following the OpenTelemetry MCP semantic
conventions: span name ``"{mcp.method.name} {target}"``, attributes
``mcp.method.name``, ``gen_ai.tool.name`` (tools/call), ``gen_ai.prompt.name``
(prompts/get), ``mcp.resource.uri`` (resources/read), ``mcp.protocol.version``,
``jsonrpc.request.id``, and on failure ``error.type`` (the JSON-RPC error code
as text, ``tool_error`` for an ``isError`` tool result, or the exception
class), ``rpc.response.status_code`` and span status ERROR (-> ``success``
false). The exporter drops ``error.type`` and ``rpc.*`` from customDimensions,
so the span also carries them as ``mcp.error.type`` and ``jsonrpc.error.code``.
Method names the server does not know are recorded as ``_OTHER``. The
ambient span, if any, is linked, not made the parent (MCP and HTTP contexts
are independent). Metric: histogram ``mcp.server.operation.duration``
(seconds) by ``mcp.method.name``, ``gen_ai.tool.name`` and ``error.type``
(absent = success): its count is the tool call count, unsampled. It is
aggregated by `DurationHistogram` (cheaper than the SDK's per-point path)
and exported at each of the distro's metric collections.

The caller (behind Easy Auth, `app.identity`): a span whose request had one
carries its object id as ``enduser.id``, which the exporter sends as the row's
``user_AuthenticatedId`` (and leaves out of customDimensions). The id is
pseudonymous; the caller's name or e-mail is never recorded.

Audit: every ``tools/call`` with a caller leaves one record, exported whatever
the trace sampler decides, as a ``customEvents`` row named ``mcp.tool_call``:
``user_AuthenticatedId`` = caller id, ``customDimensions["gen_ai.tool.name"]``,
``customDimensions["mcp.outcome"]`` (``ok``, ``tool_error``, the JSON-RPC
error code such as ``-32602`` for an unknown tool or a missing role, or an
exception class), ``customMeasurements["duration_ms"]``, ``operation_Id`` =
the trace id (the agent's own, when it sent ``traceparent``) and
``operation_ParentId`` = the MCP span's id, so the call joins its ``requests``
row when that was sampled. Query it with::

    customEvents
    | where name == "mcp.tool_call"
    | project timestamp, caller = user_AuthenticatedId, tool = tostring(customDimensions["gen_ai.tool.name"]),
        outcome = tostring(customDimensions["mcp.outcome"]), duration_ms = todouble(customMeasurements["duration_ms"]),
        trace_id = operation_Id, cloud_RoleName, cloud_RoleInstance

(the workbook's "Calls by caller and tool" panel summarizes it). A custom
event, not a log line in ``traces``: a table and a name of its own, never
mixed with what the served server logs, a typed duration, and the caller in
the column App Insights' Users tools read. It is emitted through the distro's
logger provider (the OpenTelemetry logs API: no ``logging`` record to build,
and no logger level can silence it), and trace-based sampling of logs is
pinned off. A call without a caller (no Easy Auth, an anonymous request, or
one refused before its principal headers were read) leaves no record: there
is no one to audit, and the unsampled duration metric counts it by tool and
outcome. The record is kept off that path for its cost: emitting one costs
the request thread about as much CPU as the rest of a traced call, so a call
without a caller pays nothing for it (A/B figures: bench/RESULTS.md).

Keyless: on App Service the infrastructure sets
``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD`` (Application
Insights has local auth off), and the Azure Monitor exporter reads it itself:
it then authenticates every export with the site's managed identity, which
holds "Monitoring Metrics Publisher" on the component. Locally the variable
is unset and the connection string alone is used.

Resource: ``service.name`` = ``"mcp-server-<slot>"`` with slot =
``MCP_SLOT_NAME`` (production / staging / local) -> ``cloud_RoleName``, so
the workbook splits production from staging; ``service.instance.id`` =
``WEBSITE_INSTANCE_ID`` -> ``cloud_RoleInstance``. The names the workbook
(``components/workbook.py``) queries live in `app.contract`, which both import.

Why a middleware of our own: the ``mcp`` SDK's ``OpenTelemetryMiddleware``
(same attribute names) runs only inside the SDK's dispatcher, which the app's
lean stateless transport bypasses for speed; so the span is made here, as the
dispatcher's per-message middleware (``app.main.create_app(message_middleware=...)``),
reading the outcome the dispatcher records on the ``Exchange``.

The package, one concern a module: `app.telemetry.azure_monitor` (``setup``:
the distro, the resource, the middleware), `app.telemetry.middleware` (the
span, the duration and the audit record per message),
`app.telemetry.histogram` (the duration metric), `app.telemetry.sampling`
(the distro's sampler re-implemented: the only module reading the exporter's
internals, falling back to the distro's own sampler if they moved),
`app.telemetry.otel_context` (OpenTelemetry's runtime context, read
directly) and `app.telemetry.conventions` (the names). What the rest of the
app uses is re-exported here.

Other telemetry: FastAPI (>= 0.165) traces its own routes through the global
tracer provider, so ``/`` and App Service's ``/health`` probes appear as
``GET /health`` rows without ``mcp.method.name`` (the workbook's MCP panels
ignore them); the contrib FastAPI instrumentation is off so they are not
traced twice. The distro also sends performance counters per instance and
live metrics. Its default sampler keeps about 5 traces per second per
process; ``requests`` rows then carry ``itemCount`` > 1 (the workbook sums
it). Set ``OTEL_TRACES_SAMPLER`` (e.g. ``always_on``) as an app setting to
change that.
"""

from __future__ import annotations

from app.telemetry.azure_monitor import (
    CONNECTION_STRING_ENV,
    message_middleware,
    region,
    resource_attributes,
    service_name,
    setup,
)
from app.telemetry.conventions import (
    ATTR_ENDUSER_ID,
    ATTR_ERROR_TYPE,
    ATTR_METHOD,
    ATTR_PROTOCOL_VERSION,
    ATTR_REQUEST_ID,
    ATTR_TOOL,
    AUDIT_EVENT,
    DIM_ERROR_CODE,
    DIM_ERROR_TYPE,
    DIM_OUTCOME,
    MEASURE_DURATION_MS,
    METRIC_OPERATION_DURATION,
    OUTCOME_OK,
    SERVICE_NAME_PREFIX,
)
from app.telemetry.middleware import McpInstrumentation

__all__ = [
    "ATTR_ENDUSER_ID",
    "ATTR_ERROR_TYPE",
    "ATTR_METHOD",
    "ATTR_PROTOCOL_VERSION",
    "ATTR_REQUEST_ID",
    "ATTR_TOOL",
    "AUDIT_EVENT",
    "CONNECTION_STRING_ENV",
    "DIM_ERROR_CODE",
    "DIM_ERROR_TYPE",
    "DIM_OUTCOME",
    "MEASURE_DURATION_MS",
    "METRIC_OPERATION_DURATION",
    "OUTCOME_OK",
    "SERVICE_NAME_PREFIX",
    "McpInstrumentation",
    "message_middleware",
    "region",
    "resource_attributes",
    "service_name",
    "setup",
]
