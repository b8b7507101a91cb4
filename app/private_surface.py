"""Every private name of a third-party library the app relies on, the shape it relies on, and how to check it.

The app reaches into three libraries' internals where their public API has
no way to do what it needs: the ``mcp`` SDK's (driving its kernel from our
own transport: `app.kernel`), uvicorn's (serving ``POST /mcp`` from its HTTP
parser: `app.http_protocol`), and the Azure Monitor exporter's and
OpenTelemetry's (deciding spans as the distro's sampler decides, for less:
`app.telemetry.sampling`, `app.telemetry.otel_context`). Each library is
pinned in pyproject.toml to the minor release (for the exporter, the beta)
these names were read from, and this list is the one place that says which
names they are: tests/app/test_private_surface.py checks every entry
against the installed libraries, so an upgrade that moves one fails a test
naming it, and `app.telemetry.sampling` checks its own entries at start-up
to fall back to the distro's sampler rather than fail.

Nothing here imports a library until a check runs, so listing costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

Kind = Literal["module", "class", "function", "value"]


@dataclass(frozen=True)
class PrivateName:
    """One name inside a library and the shape the app relies on.

    ``name`` is a dotted path inside ``module`` (empty for the module itself).
    ``parameters`` are parameter names the function (a class: its
    constructor) must accept. ``instance_attributes`` are dotted attribute
    paths an instance must have; they can only be checked on an instance
    (`missing_on`). ``used_by`` is the app module that relies on it.
    """

    module: str
    name: str
    kind: Kind
    used_by: str
    parameters: tuple[str, ...] = ()
    instance_attributes: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


@dataclass(frozen=True)
class Library:
    """A distribution whose private names the app uses, and the release series they were read from."""

    distribution: str
    series: str
    """The tested release: ``"2.3"`` admits 2.3.x; a pre-release such as ``"1.0.0b58"`` admits only itself."""
    names: tuple[PrivateName, ...]


def version_problem(library: Library) -> str | None:
    """Why the installed ``library`` is not the tested release (None when it is)."""
    try:
        installed = metadata.version(library.distribution)
    except metadata.PackageNotFoundError:
        return f"{library.distribution} is not installed"
    if installed == library.series or installed.startswith(library.series + "."):
        return None
    return f"{library.distribution} {installed} is installed, the tested release is {library.series}"


def resolve(entry: PrivateName) -> Any:
    """The object ``entry`` names; raises ImportError or AttributeError if it is not there."""
    found: Any = importlib.import_module(entry.module)
    for part in entry.name.split(".") if entry.name else ():
        found = getattr(found, part)
    return found


def missing(entry: PrivateName) -> str | None:
    """What is wrong with ``entry`` in the installed library (None when it has the expected shape)."""
    try:
        found = resolve(entry)
    except ImportError as error:
        return f"{entry.path}: cannot import {error.name or entry.module} (used by {entry.used_by})"
    except AttributeError:
        return f"{entry.path}: no such name (used by {entry.used_by})"
    if entry.kind == "class" and not inspect.isclass(found):
        return f"{entry.path}: expected a class, found {type(found).__name__} (used by {entry.used_by})"
    if entry.kind == "function" and not inspect.isfunction(found):
        return f"{entry.path}: expected a function, found {type(found).__name__} (used by {entry.used_by})"
    if entry.kind == "module" and not inspect.ismodule(found):
        return f"{entry.path}: expected a module, found {type(found).__name__} (used by {entry.used_by})"
    if entry.parameters:
        accepted = inspect.signature(found).parameters
        absent = [name for name in entry.parameters if name not in accepted]
        if absent:
            return f"{entry.path}: no parameter(s) {', '.join(absent)} (used by {entry.used_by})"
    return None


def missing_on(entry: PrivateName, instance: Any) -> list[str]:
    """Each of ``entry``'s instance attributes that ``instance`` lacks, named."""
    absent = []
    for path in entry.instance_attributes:
        found = instance
        for part in path.split("."):
            if not hasattr(found, part):
                absent.append(f"{entry.path} instance: no attribute {path} (used by {entry.used_by})")
                break
            found = getattr(found, part)
    return absent


# --- the mcp SDK: app.kernel ---------------------------------------------------------------------------------------

_KERNEL = "app.kernel"
MCP_SDK = Library(
    "mcp",
    "2.3",
    (
        # Subclassed: the SDK's rules for what one request may stream, with our response as its sink.
        PrivateName(
            "mcp.server._streamable_http_modern",
            "_SingleExchangeDispatchContext",
            "class",
            _KERNEL,
            parameters=("transport", "request_id", "message_metadata", "progress_token", "sink"),
            instance_attributes=("notify", "progress", "send_raw_request", "sink", "progress_token"),
        ),
        # Taken out of every served server's middleware chain: the host records the span itself.
        PrivateName("mcp.server._otel", "OpenTelemetryMiddleware", "class", _KERNEL),
        # The low-level server the kernel runs, the tool manager the fast path reads, the extensions that rule it out.
        PrivateName(
            "mcp.server.mcpserver",
            "MCPServer",
            "class",
            _KERNEL,
            instance_attributes=(
                "_lowlevel_server",
                "_lowlevel_server.server_info_stamp",
                "_lowlevel_server.lifespan",
                "_lowlevel_server.middleware",
                "_tool_manager",
                "_tool_manager.list_tools",
                "_extensions",
            ),
        ),
        # What says a tool cannot observe its request (app.kernel.context_free).
        PrivateName(
            "mcp.server.mcpserver.tools",
            "Tool",
            "class",
            _KERNEL,
            instance_attributes=("name", "fn", "context_kwarg", "resolved_params"),
        ),
        # Rebuilt by host_server with the fleet's keys: its policy and audience are read back.
        PrivateName(
            "mcp.server.request_state",
            "RequestStateBoundary",
            "class",
            _KERNEL,
            parameters=("security", "default_audience"),
            instance_attributes=("_security", "_audience"),
        ),
    ),
)

# --- uvicorn: app.http_protocol ------------------------------------------------------------------------------------

_HTTP = "app.http_protocol"
UVICORN = Library(
    "uvicorn",
    "0.54",
    (
        # Subclassed: the state it keeps per connection and request, and the callbacks overridden.
        PrivateName(
            "uvicorn.protocols.http.httptools_impl",
            "HttpToolsProtocol",
            "class",
            _HTTP,
            parameters=("config", "server_state", "app_state"),
            instance_attributes=(
                "app",
                "loop",
                "parser",
                "tasks",
                "limit_concurrency",
                "server_state.default_headers",
                "transport",
                "cycle",
                "headers",
                "expect_100_continue",
                "connection_made",
                "data_received",
                "connection_lost",
                "on_message_begin",
                "on_headers_complete",
                "on_body",
                "on_message_complete",
                "on_response_complete",
            ),
        ),
        # The protocol reads these on whatever cycle it holds: a served message's stands in for uvicorn's.
        PrivateName(
            "uvicorn.protocols.http.httptools_impl",
            "RequestResponseCycle",
            "class",
            _HTTP,
            instance_attributes=(
                "disconnected",
                "keep_alive",
                "message_event",
                "more_body",
                "response_complete",
                "response_started",
            ),
        ),
        PrivateName("uvicorn.protocols.http.httptools_impl", "STATUS_LINE", "value", _HTTP),
    ),
)

# --- the Azure Monitor exporter and OpenTelemetry: app.telemetry ----------------------------------------------------

_SAMPLING = "app.telemetry.sampling"
_CONTEXT = "app.telemetry.otel_context"
_RATE_LIMITED = "azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling"
_EXPORTER_UTILS = "azure.monitor.opentelemetry.exporter.export.trace._utils"
AZURE_MONITOR_EXPORTER = Library(
    "azure-monitor-opentelemetry-exporter",
    "1.0.0b58",
    (
        # The distro's sampler: recognised, and its rate state taken over.
        PrivateName(
            _RATE_LIMITED,
            "RateLimitedSampler",
            "class",
            _SAMPLING,
            parameters=("target_spans_per_second_limit",),
            instance_attributes=(
                "get_description",
                "_sampling_percentage_generator",
                "_sampling_percentage_generator._state.effective_window_count",
                "_sampling_percentage_generator._state.effective_window_nanoseconds",
                "_sampling_percentage_generator._state.last_nano_time",
                "_sampling_percentage_generator._inverse_adaptation_time_nanoseconds",
                "_sampling_percentage_generator._target_spans_per_nanosecond_limit",
                "_sampling_percentage_generator._round_to_nearest",
            ),
        ),
        # Re-implemented (SharedRatePercentage): tests hold ours to its percentages.
        PrivateName(
            _RATE_LIMITED,
            "RateLimitedSamplingPercentage",
            "class",
            _SAMPLING,
            parameters=("target_spans_per_second_limit", "round_to_nearest"),
        ),
        PrivateName(
            _EXPORTER_UTILS, "parent_context_sampling", "function", _SAMPLING, ("parent_context", "attributes")
        ),
        PrivateName(_EXPORTER_UTILS, "_round_down_to_nearest", "function", _SAMPLING, ("sampling_percentage",)),
        # Re-implemented (djb2_sample_score): tests hold ours to it.
        PrivateName(_EXPORTER_UTILS, "_get_DJB2_sample_score", "function", _SAMPLING, ("trace_id_hex",)),
        PrivateName("azure.monitor.opentelemetry.exporter._constants", "_SAMPLE_RATE_KEY", "value", _SAMPLING),
    ),
)

OPENTELEMETRY_SDK = Library(
    "opentelemetry-sdk",
    "1.45",
    (
        # The trace state a decided span carries, as the distro's sampler computes it.
        PrivateName(
            "opentelemetry.sdk.trace.sampling", "_get_parent_trace_state", "function", _SAMPLING, ("parent_context",)
        ),
    ),
)

OPENTELEMETRY_API = Library(
    "opentelemetry-api",
    "1.45",
    (
        # The runtime context's ContextVar, read and set directly (app.telemetry.otel_context.CurrentContext).
        PrivateName("opentelemetry.context", "_RUNTIME_CONTEXT", "value", _CONTEXT),
        PrivateName(
            "opentelemetry.context.contextvars_context",
            "ContextVarsRuntimeContext",
            "class",
            _CONTEXT,
            instance_attributes=("_current_context.get", "_current_context.set", "_current_context.reset"),
        ),
        # A dropped span is made without its constructor; its span context is made when first asked for.
        PrivateName(
            "opentelemetry.trace",
            "NonRecordingSpan",
            "class",
            _SAMPLING,
            instance_attributes=("_context", "get_span_context", "is_recording"),
        ),
        # The logs API's home (still underscored): the audit record and the distro's logger provider.
        PrivateName("opentelemetry._logs", "get_logger_provider", "function", "app.telemetry.azure_monitor"),
        PrivateName("opentelemetry._logs", "SeverityNumber", "class", "app.telemetry.middleware"),
    ),
)

LIBRARIES: tuple[Library, ...] = (MCP_SDK, UVICORN, AZURE_MONITOR_EXPORTER, OPENTELEMETRY_SDK, OPENTELEMETRY_API)
