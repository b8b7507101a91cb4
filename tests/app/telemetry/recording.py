"""What the telemetry tests share: MCP messages that continue a caller's trace, and the app with telemetry in memory."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import httpx
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from app import telemetry
from app.main import create_app
from app.telemetry import McpInstrumentation

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "traceparent": TRACEPARENT,
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
}


def tools_call(name: str, request_id: int | str = 1, meta: dict | None = None, arguments: dict | None = None) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}, "_meta": META if meta is None else meta},
    }


def headers_for(message: dict) -> dict[str, str]:
    """The routing headers a modern client sends with ``message``."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    meta = message.get("params", {}).get("_meta", {})
    if "io.modelcontextprotocol/protocolVersion" in meta:
        headers["MCP-Protocol-Version"] = meta["io.modelcontextprotocol/protocolVersion"]
        headers["Mcp-Method"] = message["method"]
        if message["method"] == "tools/call":
            headers["Mcp-Name"] = message["params"]["name"]
        elif message["method"] == "resources/read":
            headers["Mcp-Name"] = message["params"]["uri"]
    return headers


class KeptMetrics(MetricExporter):
    """A metric exporter that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.exported: list = []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass

    def points(self, name: str) -> list:
        return data_points(self.exported, name)


def data_points(exported, name: str) -> list:
    """The data points of the metric ``name`` in each ``MetricsData`` of ``exported``."""
    return [
        point
        for data in exported
        for resource_metrics in data.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


class Recorder:
    """The app's real transport and dispatcher in process, with telemetry landing in memory."""

    def __init__(self, environ: dict[str, str] | None = None, sampler=ALWAYS_ON) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        self.durations = KeptMetrics()
        self.logs = InMemoryLogRecordExporter()
        self.tracer_provider = TracerProvider(sampler=sampler)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.instrumentation = McpInstrumentation(
            self.tracer_provider, MeterProvider(metric_readers=[self.metrics]), logger_provider, self.durations
        )
        self.app = create_app(
            environ={"MCP_REQUEST_STATE_KEYS": "k1:" + "s" * 32, **(environ or {})},
            message_middleware=[self.instrumentation.middleware],
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://mcp.test")

    def send(self, *messages: dict, headers: dict[str, str] | None = None) -> list[httpx.Response]:
        async def go():
            async with self.client() as client:
                return [
                    await client.post("/mcp", json=m, headers={**headers_for(m), **(headers or {})}) for m in messages
                ]

        return asyncio.run(go())

    def finished(self):
        return self.spans.get_finished_spans()

    def audit_records(self):
        return [
            record.log_record
            for record in self.logs.get_finished_logs()
            if record.log_record.attributes.get("microsoft.custom_event.name") == telemetry.AUDIT_EVENT
        ]

    def duration_points(self):
        """What the duration exporter got, after a collection of the meter provider (as its reader makes one)."""
        self.metrics.get_metrics_data()
        return self.durations.points(telemetry.METRIC_OPERATION_DURATION)


@contextlib.contextmanager
def threads_interleaving_at_almost_every_bytecode():
    """The interpreter switching threads every microsecond: races that need a switch at one spot happen."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(switch_interval)
