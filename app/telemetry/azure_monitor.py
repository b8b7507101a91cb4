"""Azure Monitor export, configured from the environment: the distro, the resource, and the middleware it feeds.

Telemetry is on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set
(`setup`); then the distro is configured once per process and
`message_middleware` gives ``app.main.create_app`` the per-message
middleware. What is exported and why: `app.telemetry`.

The region (``MCP_REGION``, which each region's stamp sets; App Service's own
``REGION_NAME`` otherwise) is the resource attribute ``cloud.region`` and,
because the Azure Monitor exporter turns only ``service.*`` resource
attributes into columns, also an attribute of every span, duration point,
audit record and refusal count: their rows carry it in
``customDimensions["cloud.region"]``, which the workbook filters and splits by.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.contract import APP_INSIGHTS_CONNECTION_STRING_ENV, ATTR_REGION, REGION_ENV, SLOT_NAME_ENV
from app.telemetry.conventions import SERVICE_NAME_PREFIX
from app.telemetry.middleware import McpInstrumentation

CONNECTION_STRING_ENV = APP_INSIGHTS_CONNECTION_STRING_ENV
# App Service sets it on every app ("Environment variables and app settings in Azure App Service", App environment).
PLATFORM_REGION_ENV = "REGION_NAME"


def region(environ: Mapping[str, str] = os.environ) -> str:
    """The region this process serves in: MCP_REGION, else App Service's REGION_NAME, else ``local``."""
    return environ.get(REGION_ENV) or environ.get(PLATFORM_REGION_ENV) or "local"


def service_name(environ: Mapping[str, str] = os.environ) -> str:
    """``mcp-server-<MCP_SLOT_NAME>``: the cloud role name per slot."""
    return SERVICE_NAME_PREFIX + (environ.get(SLOT_NAME_ENV) or "local")


def resource_attributes(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    slot = environ.get(SLOT_NAME_ENV) or "local"
    return {
        "service.name": service_name(environ),
        "service.instance.id": environ.get("WEBSITE_INSTANCE_ID") or "local",
        "deployment.environment.name": slot,
        ATTR_REGION: region(environ),
    }


def setup(environ: Mapping[str, str] = os.environ) -> McpInstrumentation | None:
    """Configure Azure Monitor export if a connection string is set; else return None.

    Call once per process (each uvicorn worker imports the app and calls it).
    """
    connection_string = environ.get(CONNECTION_STRING_ENV)
    if not connection_string:
        return None
    # Imported here, not at module top: without a connection string the app
    # must not pay for importing OpenTelemetry's SDK and the exporter (seconds).
    from azure.monitor.opentelemetry import configure_azure_monitor
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor

    class RegionOnEverySpan(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attribute(ATTR_REGION, region(environ))

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
        span_processors=[RegionOnEverySpan()],
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
