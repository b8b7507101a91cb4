"""The per-message middleware: one SERVER span, one duration measurement and, for a tool call with a caller, one
audit record per MCP message (`McpInstrumentation`; what each carries: `app.telemetry`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from app.contract import ATTR_REGION
from app.telemetry.conventions import (
    ATTR_ENDUSER_ID,
    ATTR_ERROR_TYPE,
    ATTR_METHOD,
    ATTR_OPERATION,
    ATTR_PROMPT,
    ATTR_PROTOCOL_VERSION,
    ATTR_REQUEST_ID,
    ATTR_RESOURCE_URI,
    ATTR_RPC_STATUS_CODE,
    ATTR_TOOL,
    AUDIT_EVENT,
    DIM_ERROR_CODE,
    DIM_ERROR_TYPE,
    DIM_OUTCOME,
    KNOWN_METHODS,
    MAX_NAME,
    MEASURE_DURATION_MS,
    METRIC_OPERATION_DURATION,
    OTHER_METHOD,
    OUTCOME_OK,
    SCOPE,
    TOOL_ERROR,
)
from app.telemetry.histogram import DurationHistogram
from app.telemetry.otel_context import CurrentContext
from app.telemetry.sampling import DecidedSpans
from app.telemetry.sampling import install as install_same_decision_sampler

logger = logging.getLogger(__name__)

# A log record carrying these is a customEvents row to the Azure Monitor exporter: its name, and its
# customMeasurements (a mapping of numbers).
_CUSTOM_EVENT_NAME = "microsoft.custom_event.name"
_CUSTOM_MEASUREMENTS = "microsoft.custom_measurements"
_METHOD_NOT_FOUND = -32601
R = TypeVar("R")


def _capped(value: Any) -> str:
    return str(value)[:MAX_NAME]


def _measured(exchange: Any, exception: BaseException | None) -> tuple[str, str | None, str | None]:
    """Method, tool and error.type of a finished exchange: the duration point's attributes, and the span's.

    Written as one function for the common case (a known method, no error): every message takes it.
    """
    method, error_code = exchange.method, exchange.error_code
    if not isinstance(method, str) or (error_code == _METHOD_NOT_FOUND and method not in KNOWN_METHODS):
        method = OTHER_METHOD
    elif len(method) > MAX_NAME:
        method = method[:MAX_NAME]
    name = exchange.name
    tool = name[:MAX_NAME] if name is not None and method == "tools/call" else None  # the dispatcher's str
    if exception is not None:
        error_type = type(exception).__qualname__
    elif error_code is not None:
        error_type = str(error_code)
    else:
        error_type = TOOL_ERROR if exchange.tool_error else None
    return method, tool, error_type


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
    return (f"{method} {target}" if target else method), attributes, error_type, description[:MAX_NAME]


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
    server's (bench/cache_sim.py counts both under callgrind's cache
    simulation), so the drop path is written to run few Python calls and
    little distinct C code (`app.telemetry.otel_context.CurrentContext`), and the work that can wait
    (scoring trace ids, aggregating durations) runs in batches whose loop
    stays in the cache. Figures: bench/RESULTS.md.
    """

    def __init__(self, tracer_provider: Any, meter_provider: Any, logger_provider: Any, duration_exporter: Any) -> None:
        """``duration_exporter``: the metric exporter the duration histogram goes to (`DurationHistogram`)."""
        from opentelemetry import context, propagate, trace
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        self._context, self._propagate, self._trace = context, propagate, trace
        self._Link, self._SpanKind, self._Status, self._StatusCode = Link, SpanKind, Status, StatusCode
        self._tracer = tracer_provider.get_tracer(SCOPE)
        self._current = CurrentContext()
        # With the distro's sampler, this tracer then starts only the spans the middleware has already decided to
        # record.
        self._decided: DecidedSpans | None = install_same_decision_sampler(self._tracer, self._current)
        self._durations = DurationHistogram(duration_exporter, tracer_provider.resource)
        # The reader calls an observable instrument's callbacks at each collection: the histogram is exported
        # there. The gauge itself observes nothing, so it exports nothing.
        meter_provider.get_meter(SCOPE).create_observable_gauge(
            METRIC_OPERATION_DURATION + ".export", callbacks=[self._durations.on_collect]
        )
        # The OpenTelemetry logs API itself, not a `logging` logger: no stdlib record to build and translate, and
        # no logger level or handler of the served server's can silence the audit.
        self._audit_log = logger_provider.get_logger("app.telemetry.audit")
        # Log record attributes are all the exporter sends of a record: the region goes in each (as on the spans).
        region = tracer_provider.resource.attributes.get(ATTR_REGION)
        self._audit_attributes = {_CUSTOM_EVENT_NAME: AUDIT_EVENT, **({ATTR_REGION: region} if region else {})}
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
            **self._audit_attributes,
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
