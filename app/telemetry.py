"""Traces and metrics for MCP messages, exported to Application Insights.

Telemetry is on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.
Otherwise nothing is imported beyond the standard library (no OpenTelemetry
SDK, no Azure exporter: importing the distro alone takes ~2 s) and no
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
outcome. The record is kept off that path for its cost, measured in process
(A/B micro-benchmark of middleware and dispatcher, 2-core VM): emitting one
takes ~27 us of the request thread's CPU, and under sustained load a call
with a record cost ~60 us more of it than one without (its export runs
beside), against ~33 us for a whole ``tools/call`` ``whoami`` with telemetry
on. Without a caller the middleware measures as before (33.3 against
32.4-33.2 us per call).

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
(``components/workbook.py``) queries live in ``app.contract``, which both import.

Why a middleware of our own: the ``mcp`` SDK's ``OpenTelemetryMiddleware``
(same attribute names) runs only inside the SDK's dispatcher, which the app's
lean stateless transport bypasses for speed; so the span is made here, as the
dispatcher's per-message middleware (``app.main.create_app(message_middleware=...)``),
reading the outcome the dispatcher records on the ``Exchange``.

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

import bisect
import collections
import logging
import math
import os
import random
import threading
import time
from binascii import hexlify
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from app.contract import (
    APP_INSIGHTS_CONNECTION_STRING_ENV,
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
    SLOT_NAME_ENV,
)

logger = logging.getLogger(__name__)

CONNECTION_STRING_ENV = APP_INSIGHTS_CONNECTION_STRING_ENV

# --- further semantic-convention attributes ----------------------------------
ATTR_RPC_STATUS_CODE = "rpc.response.status_code"
# The Azure Monitor exporter leaves `error.type` and every `rpc.*` attribute
# out of a request's customDimensions (it treats them as standard fields), so
# the span carries copies under DIM_ERROR_TYPE and DIM_ERROR_CODE; metrics keep `error.type`.
# The caller's object id: the exporter moves `enduser.id` into `user_AuthenticatedId` (and out of customDimensions).
ATTR_ENDUSER_ID = "enduser.id"
ATTR_PROMPT = "gen_ai.prompt.name"
ATTR_RESOURCE_URI = "mcp.resource.uri"
ATTR_OPERATION = "gen_ai.operation.name"
TOOL_ERROR = "tool_error"
_PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
# A log record carrying these is a customEvents row to the Azure Monitor exporter: its name, and its
# customMeasurements (a mapping of numbers).
_CUSTOM_EVENT_NAME = "microsoft.custom_event.name"
_CUSTOM_MEASUREMENTS = "microsoft.custom_measurements"
# Bucket boundaries the MCP semantic conventions recommend for operation durations.
_DURATION_BUCKETS_S = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
# Client-chosen strings become span names and metric dimensions; cap them.
_MAX_NAME = 128
_SCOPE = "app.telemetry"
_DURATION_DESCRIPTION = "Duration of MCP requests handled by the server"
R = TypeVar("R")

# Method names a client cannot inflate: MCP 2026-07-28 plus the handshake era.
# Anything else the server rejects (-32601) is recorded as "_OTHER", so a
# client sending random method names cannot blow up span names or metric series.
KNOWN_METHODS = frozenset(
    {
        "completion/complete", "elicitation/create", "initialize", "logging/setLevel", "ping",
        "prompts/get", "prompts/list", "resources/list", "resources/read", "resources/subscribe",
        "resources/templates/list", "resources/unsubscribe", "roots/list", "sampling/createMessage",
        "server/discover", "subscriptions/listen", "tools/call", "tools/list",
        "notifications/cancelled", "notifications/initialized", "notifications/message",
        "notifications/progress", "notifications/roots/list_changed",
    }
)  # fmt: skip
OTHER_METHOD = "_OTHER"
_METHOD_NOT_FOUND = -32601


def service_name(environ: Mapping[str, str] = os.environ) -> str:
    """``mcp-server-<MCP_SLOT_NAME>``: the cloud role name per slot."""
    return SERVICE_NAME_PREFIX + (environ.get(SLOT_NAME_ENV) or "local")


def resource_attributes(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    slot = environ.get(SLOT_NAME_ENV) or "local"
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
    # must not pay for importing OpenTelemetry's SDK and the exporter (~2 s).
    from azure.monitor.opentelemetry import configure_azure_monitor
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk.resources import Resource

    # The Azure SDK logs every export at INFO; exported, those logs would feed
    # themselves (each export logs, each log is exported).
    logging.getLogger("azure").setLevel(logging.WARNING)
    # The distro also runs the Azure VM detector, which probes the instance
    # metadata endpoint (seconds of start-up delay off a VM); this runs on App Service.
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
    # The Azure Monitor exporter never sends exemplars, and offering each measurement to the exemplar reservoir
    # costs a context lookup per message.
    os.environ.setdefault("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
    configure_azure_monitor(
        connection_string=connection_string,
        resource=Resource.create(resource_attributes(environ)),
        instrumentation_options={"fastapi": {"enabled": False}},
        # The default, pinned: the audit record of a call whose span the sampler drops must still be exported.
        enable_trace_based_sampling_for_logs=False,
    )
    return McpInstrumentation(
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
        # Authenticates as the distro's own exporter does (connection string, and the managed identity when
        # APPLICATIONINSIGHTS_AUTHENTICATION_STRING says so, which it reads itself).
        AzureMonitorMetricExporter(connection_string=connection_string),
    )


def message_middleware(environ: Mapping[str, str] = os.environ) -> list[Callable[..., Awaitable[Any]]]:
    """The per-message middleware for ``app.main.create_app``: empty when telemetry is off."""
    instrumentation = setup(environ)
    return [] if instrumentation is None else [instrumentation.middleware]


def _capped(value: Any) -> str:
    return str(value)[:_MAX_NAME]


def _measured(exchange: Any, exception: BaseException | None) -> tuple[str, str | None, str | None]:
    """Method, tool and error.type of a finished exchange: the duration point's attributes, and the span's.

    Written as one function for the common case (a known method, no error): every message takes it.
    """
    method, error_code = exchange.method, exchange.error_code
    if not isinstance(method, str) or (error_code == _METHOD_NOT_FOUND and method not in KNOWN_METHODS):
        method = OTHER_METHOD
    elif len(method) > _MAX_NAME:
        method = method[:_MAX_NAME]
    name = exchange.name
    tool = name[:_MAX_NAME] if name is not None and method == "tools/call" else None  # the dispatcher's str
    if exception is not None:
        error_type = type(exception).__qualname__
    elif error_code is not None:
        error_type = str(error_code)
    else:
        error_type = TOOL_ERROR if exchange.tool_error else None
    return method, tool, error_type


# DJB2 over the 32 hex digits of a trace id, as the distro's sampler scores it, computed in C. The hash is
# h' = 33 h + c (mod 2**32, signed), so h = 5381 * 33**32 + sum(c_i * 33**(31 - i)) (mod 2**32). Digit i of value v_i
# has the code c_i = 48 + v_i + 39 * [v_i > 9] ("0" is 48, "a" is 97), so the sum is 48 * sum(33**k), plus the
# digits read as a base-33 number (hex digits are base-33 digits), plus 39 times the same with each letter read as 1
# and each decimal digit as 0. Two parses of 32 characters: no loop and no lookup table, whose entries miss in the
# cache under load (in a loop this and a table of byte terms both take ~0.7 us, the distro's loop 1.9 us).
_MOD = 2**32
_INT32_MAX = 2**31 - 1
_DJB2_BASE = (5381 * pow(33, 32, _MOD) + 48 * sum(pow(33, k, _MOD) for k in range(32))) % _MOD
_LETTERS_AS_ONE = bytes.maketrans(b"0123456789abcdef", b"0000000000111111")


def djb2_sample_score(trace_id: int) -> float:
    """The distro's ``_get_DJB2_sample_score(format_trace_id(trace_id).lower())``, in 0..1, without its loop."""
    digits = hexlify(trace_id.to_bytes(16, "big"))
    value = (_DJB2_BASE + int(digits, 33) + 39 * int(digits.translate(_LETTERS_AS_ONE), 33)) & _MOD - 1
    if value > _INT32_MAX:  # negative as a signed 32-bit int: the absolute value (2**31 - 1 for -2**31)
        value = _MOD - value if value != 2**31 else _INT32_MAX
    return value / _INT32_MAX


# Fresh random trace ids (as the SDK's RandomIdGenerator draws them) with their scores, drawn and scored
# `_SCORED_BATCH` at a time: the draw and the score then run in a loop whose code stays in the cache, where once per
# message it was cold each time. Per process: a forked child starts without its parent's ids (the same ids in two
# processes would join unrelated traces).
_SCORED_BATCH = 64
_SCORED_TRACE_IDS: list[tuple[int, float]] = []
os.register_at_fork(after_in_child=_SCORED_TRACE_IDS.clear)


def _draw_scored_trace_ids() -> None:
    draw = random.getrandbits
    fresh = [draw(128) for _ in range(_SCORED_BATCH)]
    _SCORED_TRACE_IDS.extend((trace_id, djb2_sample_score(trace_id) * 100.0) for trace_id in fresh if trace_id)


class CurrentContext:
    """The current OpenTelemetry context, read and set in C calls.

    The API reaches the runtime context's ``ContextVar`` through six Python
    calls per message, and under load each Python call on the per-message
    path costs several times its cost in a loop (its code is cold again at
    every message: `McpInstrumentation`). With the default runtime context
    (contextvars; ``OTEL_PYTHON_CONTEXT`` unset) `get`, `set` and `reset` are
    that variable's own methods; with any other they are the API's
    ``get_current``, ``attach`` and ``detach``. The API's
    ``set_span_in_context(span)`` is ``Context({**get(), span_key: span})``.
    ``reset`` of the variable raises for a token from another context, where
    the API's ``detach`` logs: callers log it (`McpInstrumentation.middleware`).
    tests/app/test_telemetry.py holds the middleware's use of both to the API.
    """

    def __init__(self) -> None:
        from opentelemetry import context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime = context._RUNTIME_CONTEXT
        if type(runtime) is ContextVarsRuntimeContext:
            variable = runtime._current_context
            self.get, self.set, self.reset = variable.get, variable.set, variable.reset
        else:
            self.get, self.set, self.reset = context.get_current, context.attach, context.detach
        self.span_key, self.Context = _SPAN_KEY, context.Context


def _unsampled_span_type() -> type:
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    class UnsampledSpan(NonRecordingSpan):
        """The SDK's span for a dropped message, whose span context (and span id) is made when first asked for.

        Something asks only when the message's work continues the trace (a
        child span, an outgoing call's ``traceparent``); most messages never
        do. Made without a Python call (`DecidedSpans.dropped_span`): the
        instance gets ``_parts``, and ``_context`` stays the class's None
        until asked for.
        """

        _context = None
        _parts: tuple[int, Any, Any, Any]  # trace id, trace flags, trace state, id generator

        def get_span_context(self) -> SpanContext:
            if self._context is None:
                trace_id, trace_flags, trace_state, ids = self._parts
                self._context = SpanContext(
                    trace_id, ids.generate_span_id(), False, trace_flags=trace_flags, trace_state=trace_state
                )
            return self._context

    return UnsampledSpan


class DecidedSpans:
    """Sampling decided before a span exists, so a dropped message never enters the SDK's span machinery.

    The middleware asks `dropped_span` first: it picks the trace id as the
    SDK would (the parent's, else a fresh random one), asks the
    `SameDecisionSampler`, and for a drop returns the same non-recording
    span the SDK would have made (same trace id, a fresh span id, unsampled
    flags, the parent's trace state): children and outgoing calls continue
    the trace as unsampled, as before (the span context is made when first
    asked for: `_unsampled_span_type`). For a message to record it returns
    None and keeps the decision and trace id, which this object hands to the
    SDK's ``start_span`` as the tracer's sampler and id generator, so the
    recorded span is exactly the one decided on (one rate-limiter tick per
    message, as before). Measured: the SDK's span path for a dropped message
    cost ~30 us of CPU per request in the server under load, this one ~20 us
    less (README, Telemetry cost).
    """

    def __init__(self, sampler: SameDecisionSampler, ids: Any, current: CurrentContext) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import TraceFlags

        self._sampler, self._ids, self._trace, self._current = sampler, ids, trace, current
        self._DROP = Decision.DROP
        self._UnsampledSpan = _unsampled_span_type()
        # What the SDK gives a dropped span: unsampled, random trace id as the parent says.
        self._unsampled = {True: TraceFlags(TraceFlags.RANDOM_TRACE_ID), False: TraceFlags(TraceFlags.DEFAULT)}
        # A new trace's id: with the SDK's RandomIdGenerator (random.getrandbits(128), never 0, and random), one
        # of `_SCORED_TRACE_IDS`; another generator is asked for each id, and once whether its ids are random.
        self._scored_ids = type(ids) is RandomIdGenerator
        self._new_trace_flags = self._unsampled[self._scored_ids or ids.is_trace_id_random()]
        self._decision: Any = None
        self._trace_id: int | None = None

    def dropped_span(self, parent: Any) -> Any:
        """The non-recording span of a message to drop; None to let the tracer start the (recorded) span.

        ``parent`` None: the span continues the current context, as the tracer's ``start_span`` would.
        """
        if parent is None and self._current.get().get(self._current.span_key) is None:
            # A new trace, the common case: decided in the fewest Python calls (see `CurrentContext`).
            if self._scored_ids:
                while True:  # a loop, not one refill: another thread may take what this one drew
                    try:
                        trace_id, score = _SCORED_TRACE_IDS.pop()
                        break
                    except IndexError:
                        _draw_scored_trace_ids()
            else:
                trace_id, score = self._ids.generate_trace_id(), None
            result = self._sampler.sampled_root(trace_id, score=score)
            trace_flags, trace_state = self._new_trace_flags, None
        else:
            parent_context = self._trace.get_current_span(parent).get_span_context()
            if parent_context.is_valid:
                trace_id, random_id = parent_context.trace_id, parent_context.trace_flags.random_trace_id
            else:
                trace_id, random_id = self._ids.generate_trace_id(), self._ids.is_trace_id_random()
            result = self._sampler.should_sample(parent, trace_id, "")
            trace_flags, trace_state = self._unsampled[random_id], result.trace_state
            if result.decision is self._DROP:  # the one decision that does not record
                result = None
        if result is None:
            span = self._UnsampledSpan.__new__(self._UnsampledSpan)
            span._parts = (trace_id, trace_flags, trace_state, self._ids)
            return span
        self._decision, self._trace_id = result, trace_id
        return None

    # The tracer's sampler and id generator for the one span `dropped_span` left to it.

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        decision, self._decision = self._decision, None
        return decision if decision is not None else self._sampler.should_sample(parent_context, trace_id, name)

    def get_description(self) -> str:
        return self._sampler.get_description()

    def generate_trace_id(self) -> int:
        trace_id, self._trace_id = self._trace_id, None
        return trace_id if trace_id is not None else self._ids.generate_trace_id()

    def generate_span_id(self) -> int:
        return self._ids.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return self._ids.is_trace_id_random()


class DurationHistogram:
    """The unsampled ``mcp.server.operation.duration`` histogram, aggregated here and exported at each collection.

    Why not the SDK's ``Histogram.record``: it cleans and hashes the point's
    attributes twice and builds a measurement through four layers, ~6.5 us a
    point in a loop and ~9 us of CPU per message in the server under load
    (A/B with the per-message update below: 89-104 against 81-87 us per
    whoami). This keeps, per attribute set, what the SDK's explicit-bucket
    aggregation keeps (count, sum, min, max, bucket counts, same bounds and
    bucket rule), folding measurements in batches (`add`), and hands it to
    the metric exporter as the SDK's own delta ``HistogramDataPoint`` s. The Azure
    Monitor exporter sends, per point, a ``customMetrics`` row with
    valueCount, valueSum, valueMin and valueMax, as before
    (tests/app/test_telemetry.py compares the points with the SDK's).

    Export runs at each collection of the distro's metric reader (`on_collect`
    is an observable instrument's callback, on the reader's thread), so it
    follows the reader's interval and its final collection at shutdown.
    """

    FOLD_EVERY = 64

    def __init__(self, exporter: Any, resource: Any, boundaries: Sequence[float] = _DURATION_BUCKETS_S) -> None:
        from opentelemetry.sdk.metrics.export import AggregationTemporality
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._exporter = exporter
        self._resource = resource
        self._scope = InstrumentationScope(_SCOPE)
        self._delta = AggregationTemporality.DELTA
        self._boundaries = tuple(boundaries)
        self._first_bound = self._boundaries[0] if self._boundaries else math.inf
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[float, str, str | None, str | None]] = collections.deque()
        # (method, tool, error type) -> [count, sum, min, max, bucket counts]
        self._points: dict[tuple[str, str | None, str | None], list[Any]] = {}
        self._since_ns = time.time_ns()

    def add(self, seconds: float, method: str, tool: str | None, error_type: str | None) -> None:
        """Queue one measurement; every `FOLD_EVERY`, fold the queue into the points.

        No lock per message (the deque's append is atomic): the lock and the
        aggregation run once per `FOLD_EVERY` messages, in a loop whose code
        stays in the cache, where per message their code was cold each time.
        """
        pending = self._pending
        pending.append((seconds, method, tool, error_type))
        if len(pending) >= self.FOLD_EVERY:
            self._lock.acquire()
            try:
                self._fold()
            finally:
                self._lock.release()

    def _fold(self) -> None:
        """The queued measurements into the points (called under the lock), one ``popleft`` at a time, so one
        queued meanwhile is folded now or next time, never lost."""
        pending, points, boundaries, first_bound = self._pending, self._points, self._boundaries, self._first_bound
        next_measurement = pending.popleft
        while pending:
            seconds, method, tool, error_type = next_measurement()
            key = (method, tool, error_type)
            point = points.get(key)
            if point is None:
                point = points[key] = [0, 0.0, seconds, seconds, [0] * (len(boundaries) + 1)]
            point[0] += 1
            point[1] += seconds
            if seconds < point[2]:
                point[2] = seconds
            elif seconds > point[3]:
                point[3] = seconds
            # Most messages take less than the first bound: no call for their bucket.
            point[4][0 if seconds <= first_bound else bisect.bisect_left(boundaries, seconds)] += 1

    def collect(self) -> Any:
        """The points since the last collection as ``MetricsData`` (None if there were none); starts a new interval."""
        from opentelemetry.sdk.metrics.export import (
            Histogram,
            HistogramDataPoint,
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        now_ns = time.time_ns()
        with self._lock:
            self._fold()
            points, self._points = self._points, {}
            since_ns, self._since_ns = self._since_ns, now_ns
        if not points:
            return None
        data_points = [
            HistogramDataPoint(
                attributes=_duration_attributes(method, tool, error_type),
                start_time_unix_nano=since_ns,
                time_unix_nano=now_ns,
                count=count,
                sum=total,
                bucket_counts=buckets,
                explicit_bounds=self._boundaries,
                min=low,
                max=high,
            )
            for (method, tool, error_type), (count, total, low, high, buckets) in points.items()
        ]
        metric = Metric(
            name=METRIC_OPERATION_DURATION,
            description=_DURATION_DESCRIPTION,
            unit="s",
            data=Histogram(data_points=data_points, aggregation_temporality=self._delta),
        )
        return MetricsData([ResourceMetrics(self._resource, [ScopeMetrics(self._scope, [metric], "")], "")])

    def on_collect(self, _options: Any) -> list[Any]:
        data = self.collect()
        if data is not None:
            try:
                self._exporter.export(data)
            except Exception:  # a failed export must not fail the reader's collection of everything else
                logger.exception("exporting %s failed", METRIC_OPERATION_DURATION)
        return []


def _duration_attributes(method: str, tool: str | None, error_type: str | None) -> dict[str, str]:
    attributes = {ATTR_METHOD: method}
    if tool is not None:
        attributes[ATTR_TOOL] = tool
    if error_type is not None:
        attributes[ATTR_ERROR_TYPE] = error_type
    return attributes


def _is_distro_rate_limited(sampler: Any) -> bool:
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler

    return type(sampler) is RateLimitedSampler


class SharedRatePercentage:
    """The distro's ``RateLimitedSamplingPercentage`` (same state, arithmetic and rounding) at less cost per span.

    It takes over the distro's state and its place in the distro's sampler,
    so our middleware and every other tracer still count into one rate, and
    saves in two ways:

    - The state is three numbers, not a state object allocated per span.
    - A span whose score is at or above every percentage the rate can reach
      within ``DEFER_NS`` of the last exact update is dropped whatever the
      exact figure, so its tick is queued (`percentage_unless_dropped`) and
      applied, in order and with its own timestamp, by the next exact update
      (which any span with a lower score, any other tracer's span, and the
      span after ``DEFER_MAX`` queued ticks make). The state after those updates is
      the one the distro computes, bit for bit; only the moment it is
      computed moves. The bound: from the exact state (count C, window W),
      no run of ticks within ``DEFER_NS`` makes the window exceed
      W + ``DEFER_NS`` or the count fall below max(1, C e^-(DEFER_NS/0.1 s)),
      so the percentage stays below 100 limit (W + DEFER_NS) / that count.
      At 10 000 messages a second and 5 traces a second the rate is ~0.05 %,
      the bound ~0.06 %: 99.9 % of messages skip the update. A/B in the
      server under load (traced whoami): ~86 against ~71 us of CPU per message.
      A tick is queued without the lock, so that most messages run no lock code.

    tests/app/test_telemetry.py holds its percentages and the decisions made
    with it to the distro's on the same clock, and checks that no tick is lost
    when threads share the rate.
    """

    DEFER_NS = 10_000_000
    DEFER_MAX = 64

    def __init__(self, distro_percentage: Any) -> None:
        from azure.monitor.opentelemetry.exporter.export.trace._utils import _round_down_to_nearest

        state = distro_percentage._state
        self._count, self._window_ns = state.effective_window_count, state.effective_window_nanoseconds
        self._last_ns = state.last_nano_time
        self._decay_per_ns = distro_percentage._inverse_adaptation_time_nanoseconds
        self._limit_per_ns = distro_percentage._target_spans_per_nanosecond_limit
        self._round = _round_down_to_nearest if distro_percentage._round_to_nearest else None
        self._lock = threading.Lock()
        self._queued: collections.deque[int] = collections.deque()
        # The bound and the time it was computed at, as one attribute: read without the lock, the two belong
        # together. Nothing is deferred before the first exact update.
        self._deferrable = (math.inf, self._last_ns)

    # The lock is taken with acquire and release, not `with`: its __exit__ call alone costs more than both.

    def get(self) -> float:
        """Tick for one span now and return the percentage it is sampled at (the distro's ``get``)."""
        now = time.time_ns()
        self._lock.acquire()
        try:
            return self._exact(now)
        finally:
            self._lock.release()

    def percentage_unless_dropped(self, score_percent: float) -> float | None:
        """`get`, or None with the tick queued if a span scored ``score_percent`` is dropped whatever the rate.

        A tick is queued without the lock (most messages, so no lock code runs for them): the deque's append is
        atomic and `_exact` drains it one ``popleft`` at a time, so a tick queued while an update runs is
        applied by that update or the next, never lost.
        """
        now = time.time_ns()
        bound, bound_from_ns = self._deferrable
        if score_percent >= bound and now - bound_from_ns <= self.DEFER_NS and len(self._queued) < self.DEFER_MAX:
            self._queued.append(now)
            return None
        self._lock.acquire()
        try:
            return self._exact(now)
        finally:
            self._lock.release()

    def _exact(self, now: int) -> float:
        """The queued ticks, then this one, then the percentage and the next bound (called under the lock)."""
        queued = self._queued
        queued.append(now)
        count, window, last = self._count, self._window_ns, self._last_ns
        decay_per_ns, exp, next_tick = self._decay_per_ns, math.exp, queued.popleft
        while queued:  # the distro's `_update_state`, tick by tick, with the same arithmetic
            tick = next_tick()
            if tick <= last:
                count += 1
            else:
                elapsed_ns = tick - last
                decay = exp(-elapsed_ns * decay_per_ns)
                count = count * decay + 1
                window = window * decay + elapsed_ns
                last = tick
        self._count, self._window_ns, self._last_ns = count, window, last
        floor = max(1.0, count * math.exp(-self.DEFER_NS * decay_per_ns))
        # A hair above the bound's exact value, for float rounding in either figure.
        bound = 100 * min((window + self.DEFER_NS) * self._limit_per_ns / floor, 1.0) * (1 + 1e-9)
        self._deferrable = (bound, last)
        percentage = 100 * min(window * self._limit_per_ns / count, 1.0)
        return self._round(percentage) if self._round is not None else percentage


class SameDecisionSampler:
    """The distro's rate-limited sampler, deciding exactly as it does, for less.

    It shares the distro sampler's rate state (so the process still keeps
    about ``traces_per_second``, counted over every span), honours a local
    parent's decision the same way, scores the trace id with the same DJB2
    (`djb2_sample_score`) and stamps the same sample rate (-> ``itemCount``).
    What it saves: the distro's per-character hash loop, a state object per
    span and, for a root span it is sure to drop, the rate update itself
    (both `SharedRatePercentage`), and building a fresh result for every
    dropped root span (a dropped span never reads its attributes). tests/app/test_telemetry.py holds it to the distro's
    decisions. Why not a sampler of our own: ``itemCount`` and consistent
    sampling across services depend on exactly this algorithm.
    """

    def __init__(self, distro_sampler: Any) -> None:
        from azure.monitor.opentelemetry.exporter._constants import _SAMPLE_RATE_KEY
        from azure.monitor.opentelemetry.exporter.export.trace._utils import parent_context_sampling
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult, _get_parent_trace_state

        shared = SharedRatePercentage(distro_sampler._sampling_percentage_generator)
        self._percentage = distro_sampler._sampling_percentage_generator = shared
        self._description = distro_sampler.get_description()
        self._parent_context_sampling = parent_context_sampling
        self._parent_trace_state = _get_parent_trace_state
        self._SamplingResult, self._Decision, self._rate_key = SamplingResult, Decision, _SAMPLE_RATE_KEY
        # A dropped root span reads nothing from its result: one serves them all.
        self._dropped_root = SamplingResult(Decision.DROP, None, None)

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> Any:
        if parent_context is None:
            return self.sampled_root(trace_id, attributes) or self._dropped_root
        parent_result = self._parent_context_sampling(parent_context, attributes)
        if parent_result is not None:
            return parent_result
        score = djb2_sample_score(trace_id) * 100.0
        percentage = self._percentage.get()
        return self._result(score < percentage, percentage, attributes, parent_context)

    def sampled_root(self, trace_id: int, attributes: Any = None, score: float | None = None) -> Any:
        """`should_sample` for a span without parent context when it records; None when it drops.

        ``score``: the trace id's ``djb2_sample_score * 100`` if already known (`_SCORED_TRACE_IDS`).
        """
        if score is None:
            score = djb2_sample_score(trace_id) * 100.0
        percentage = self._percentage.percentage_unless_dropped(score)
        if percentage is None or score >= percentage:
            return None
        return self._result(True, percentage, attributes, None)

    def _result(self, sampled: bool, percentage: float, attributes: Any, parent_context: Any) -> Any:
        """The distro's result for a decided span (a dropped root never gets here: it takes `_dropped_root`)."""
        new_attributes = {} if attributes is None else dict(attributes)
        if percentage != 100.0:
            new_attributes[self._rate_key] = percentage
        return self._SamplingResult(
            self._Decision.RECORD_AND_SAMPLE if sampled else self._Decision.DROP,
            new_attributes,
            self._parent_trace_state(parent_context),
        )

    def get_description(self) -> str:
        return self._description


def _outcome(exchange: Any, exception: BaseException | None) -> tuple[str, dict[str, Any], str | None, str]:
    """Span name, attributes, error.type and status description of a finished exchange.

    Read from what the dispatcher decided (``app.protocol.Exchange``), not from
    the raw body: method, tool name, protocol version (legacy requests carry it
    in a header) and the JSON-RPC error code or tool ``isError`` flag.
    """
    method, tool, error_type = _measured(exchange, exception)
    attributes: dict[str, Any] = {ATTR_METHOD: method, "network.transport": "tcp", "network.protocol.name": "http"}
    target = None
    params = exchange.params if isinstance(exchange.params, Mapping) else {}
    if tool is not None:
        target = attributes[ATTR_TOOL] = tool
        attributes[ATTR_OPERATION] = "execute_tool"
    elif method == "prompts/get" and params.get("name") is not None:
        target = attributes[ATTR_PROMPT] = _capped(params["name"])
    elif method == "resources/read" and exchange.name is not None:
        attributes[ATTR_RESOURCE_URI] = str(exchange.name)  # high cardinality: an attribute, never the span name
    if exchange.protocol_version is not None:
        attributes[ATTR_PROTOCOL_VERSION] = _capped(exchange.protocol_version)
    if exchange.request_id is not None:
        attributes[ATTR_REQUEST_ID] = str(exchange.request_id)
    description = ""
    if exception is not None:
        description = str(exception)
    elif exchange.error_code is not None:
        attributes[ATTR_RPC_STATUS_CODE] = attributes[DIM_ERROR_CODE] = error_type
        description = f"JSON-RPC error {exchange.error_code}"
    elif exchange.tool_error:
        description = "tool result has isError"
    if error_type is not None:
        attributes[ATTR_ERROR_TYPE] = attributes[DIM_ERROR_TYPE] = error_type
    return (f"{method} {target}" if target else method), attributes, error_type, description[:_MAX_NAME]


class McpInstrumentation:
    """A span and a duration measurement around each JSON-RPC message, and the audit record of a tool call with a
    caller (``app.protocol`` middleware).

    What a message costs with telemetry on is mostly this class, so it is
    written for the common case, a message the sampler drops (the distro keeps
    about 5 traces per second per process): the span is started and made
    current without the SDK's context-manager layers, attributes are built
    only for a span that records, the distro's rate-limited sampler is
    replaced, on this tracer only, by `SameDecisionSampler`, which decides
    exactly as it does for less (a drop it is sure of skips the rate
    update), and durations go to `DurationHistogram`, not the SDK's
    per-point path.

    Under load the cost is less the instructions than the instruction cache:
    telemetry's code is cold again at every message, after the served
    server's. bench/cache_sim.py (the message handler under callgrind's cache
    simulation) counted, per whoami at 58225af, 1.58x the L1i misses of
    telemetry off against 1.49x the instructions, so the drop path is
    written to run few Python calls and little distinct C code
    (`CurrentContext`), and the work that can wait (scoring trace ids,
    aggregating durations) runs in batches whose loop stays in the cache.
    Figures: README, Telemetry cost.
    """

    def __init__(self, tracer_provider: Any, meter_provider: Any, logger_provider: Any, duration_exporter: Any) -> None:
        """``duration_exporter``: the metric exporter the duration histogram goes to (`DurationHistogram`)."""
        from opentelemetry import context, propagate, trace
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        self._context, self._propagate, self._trace = context, propagate, trace
        self._Link, self._SpanKind, self._Status, self._StatusCode = Link, SpanKind, Status, StatusCode
        self._tracer = tracer_provider.get_tracer(_SCOPE)
        self._current = CurrentContext()
        self._decided: DecidedSpans | None = None
        sampler = getattr(self._tracer, "sampler", None)
        if _is_distro_rate_limited(sampler):
            # This tracer then starts only the spans the middleware has already decided to record.
            self._decided = DecidedSpans(SameDecisionSampler(sampler), self._tracer.id_generator, self._current)
            self._tracer.sampler = self._tracer.id_generator = self._decided
        self._durations = DurationHistogram(duration_exporter, tracer_provider.resource)
        # The reader calls an observable instrument's callbacks at each collection: the histogram is exported
        # there. The gauge itself observes nothing, so it exports nothing.
        meter_provider.get_meter(_SCOPE).create_observable_gauge(
            METRIC_OPERATION_DURATION + ".export", callbacks=[self._durations.on_collect]
        )
        # The OpenTelemetry logs API itself, not a `logging` logger: no stdlib record to build and translate, and
        # no logger level or handler of the served server's can silence the audit.
        self._audit_log = logger_provider.get_logger("app.telemetry.audit")
        self._INFO = SeverityNumber.INFO

    async def middleware(self, exchange: Any, call_next: Callable[[Any], Awaitable[R]]) -> R:
        message = exchange.message
        params = message.get("params") if isinstance(message, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        # Without a traceparent there is no caller span to continue, and tracestate and baggage go unused, as they
        # would if extracted (checked here: most messages carry none, and this is every message's cost).
        if isinstance(meta, dict) and isinstance(meta.get("traceparent"), str):
            parent, links = self._parent_and_links(meta)
        else:
            parent, links = None, None
        started = time.perf_counter()
        span = self._decided.dropped_span(parent) if self._decided is not None else None
        if span is None:
            method = message.get("method") if isinstance(message, dict) else None
            span = self._tracer.start_span(
                _capped(method) if isinstance(method, str) else OTHER_METHOD,
                context=parent,
                kind=self._SpanKind.SERVER,
                links=links,
                record_exception=False,
                set_status_on_exception=False,
            )
            recording = span.is_recording()
        else:
            recording = False
        current = self._current
        token = current.set(current.Context({**current.get(), current.span_key: span}))
        exception = None
        try:
            return await call_next(exchange)
        except BaseException as exc:  # the dispatcher answers every failure itself; another wrapper may not
            exception = exc
            if recording:
                span.record_exception(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            caller = exchange.caller
            if recording:
                name, attributes, error_type, description = _outcome(exchange, exception)
                if caller is not None:
                    attributes[ATTR_ENDUSER_ID] = caller.id  # the object id alone: `caller.name` is personal data
                span.update_name(name)
                span.set_attributes(attributes)
                if error_type is not None:
                    span.set_status(self._Status(self._StatusCode.ERROR, description))
                method, tool = attributes[ATTR_METHOD], attributes.get(ATTR_TOOL)
            else:
                method, tool, error_type = _measured(exchange, exception)
            if caller is not None and method == "tools/call":
                # Still inside the span's context, so the record carries its trace and span ids.
                self._audit(caller.id, tool, error_type, elapsed)
            try:
                current.reset(token)
            except Exception:  # as the API's detach: a token from another context is logged, not raised
                logger.exception("Failed to detach context")
            if recording:  # a span that does not record ends as a no-op
                span.end()
            self._durations.add(elapsed, method, tool, error_type)

    def _audit(self, caller_id: str, tool: str | None, error_type: str | None, elapsed: float) -> None:
        """The audit record of one tools/call: a customEvents row (module docstring, Audit)."""
        attributes = {
            _CUSTOM_EVENT_NAME: AUDIT_EVENT,
            ATTR_ENDUSER_ID: caller_id,
            DIM_OUTCOME: error_type or OUTCOME_OK,
            _CUSTOM_MEASUREMENTS: {MEASURE_DURATION_MS: elapsed * 1000.0},
        }
        if tool is not None:
            attributes[ATTR_TOOL] = tool
        self._audit_log.emit(body=AUDIT_EVENT, severity_number=self._INFO, attributes=attributes)

    def _parent_and_links(self, meta: dict[str, Any]) -> tuple[Any, list[Any] | None]:
        """The caller's context from ``params._meta`` (which has a ``traceparent``) as parent, linking the ambient
        (transport) span; (None, None), to continue the ambient context, if the traceparent is malformed."""
        carrier = {key: meta[key] for key in ("traceparent", "tracestate", "baggage") if isinstance(meta.get(key), str)}
        # Extract into an empty context: the parent is the caller's span, never the transport's.
        parent = self._propagate.extract(carrier, context=self._context.Context())
        if not self._trace.get_current_span(parent).get_span_context().is_valid:
            return None, None  # malformed traceparent: continue the ambient context rather than orphan the span
        ambient = self._trace.get_current_span().get_span_context()
        return parent, [self._Link(ambient)] if ambient.is_valid else None
