"""Telemetry: one SERVER span per MCP message continuing the caller's trace,
MCP semantic-convention attributes, a duration metric by tool and outcome,
and nothing at all when no connection string is set."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import subprocess
import sys
import threading
import time

import httpx

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app import telemetry
from app.telemetry import McpInstrumentation
from components import workbook
from tests.app.serving import PROJECT_ROOT, running_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "traceparent": TRACEPARENT,
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
}


def tools_call(name: str, request_id: int | str = 1, meta: dict | None = None) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": {}, "_meta": META if meta is None else meta},
    }


class Recorder:
    """An instrumentation whose spans and metrics land in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider = tracer_provider
        self.instrumentation = McpInstrumentation(tracer_provider, MeterProvider(metric_readers=[self.metrics]))

    def finished(self):
        return self.spans.get_finished_spans()

    def duration_points(self):
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource_metrics in data.resource_metrics
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
            if metric.name == telemetry.METRIC_OPERATION_DURATION
            for point in metric.data.data_points
        ]


async def answer(message: dict) -> dict:
    """A stand-in transport handler: echoes success, fails on demand."""
    await asyncio.sleep(0)
    tool = message["params"].get("name")
    if tool == "unknown":
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32602, "message": "Unknown tool: unknown"}}
    if tool == "broken":
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "isError": True}}
    if tool == "crash":
        raise RuntimeError("boom")
    return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [{"type": "text", "text": "ok"}]}}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_contract_with_the_workbook_is_the_same_on_both_sides():
    for name in (
        "ATTR_METHOD",
        "ATTR_TOOL",
        "ATTR_PROTOCOL_VERSION",
        "ATTR_REQUEST_ID",
        "ATTR_ERROR_TYPE",
        "ATTR_RPC_STATUS_CODE",
        "SERVICE_NAME_PREFIX",
        "METRIC_OPERATION_DURATION",
    ):
        assert getattr(telemetry, name) == getattr(workbook, name), name


def test_tools_call_continues_the_trace_from_meta_with_mcp_attributes(recorder):
    handler = recorder.instrumentation.wrap(answer)
    response = asyncio.run(handler(tools_call("echo", request_id=7)))
    assert response["result"]["content"][0]["text"] == "ok"

    (span,) = recorder.finished()
    assert span.kind is SpanKind.SERVER
    assert span.name == "tools/call echo"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == CALLER_SPAN_ID and span.parent.is_remote
    assert span.context.trace_state.get("congo") == "t61rcWkgMzE"
    assert span.attributes["mcp.method.name"] == "tools/call"
    assert span.attributes["gen_ai.tool.name"] == "echo"
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["mcp.protocol.version"] == "2026-07-28"
    assert span.attributes["jsonrpc.request.id"] == "7"
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_ambient_transport_span_is_linked_not_parent(recorder):
    handler = recorder.instrumentation.wrap(answer)
    tracer = recorder.tracer_provider.get_tracer("transport")

    async def via_http_span():
        with tracer.start_as_current_span("POST /mcp", kind=SpanKind.SERVER) as http_span:
            await handler(tools_call("echo"))
            return http_span.get_span_context()

    http_context = asyncio.run(via_http_span())
    mcp_span = next(s for s in recorder.finished() if s.name == "tools/call echo")
    assert format(mcp_span.context.trace_id, "032x") == TRACE_ID
    assert [link.context.span_id for link in mcp_span.links] == [http_context.span_id]


@pytest.mark.parametrize(
    ("tool", "error_type", "rpc_code"),
    [("unknown", "-32602", "-32602"), ("broken", "tool_error", None)],
)
def test_failing_call_records_error_type_and_error_status(recorder, tool, error_type, rpc_code):
    asyncio.run(recorder.instrumentation.wrap(answer)(tools_call(tool)))
    (span,) = recorder.finished()
    assert span.attributes["error.type"] == error_type
    assert span.attributes.get("rpc.response.status_code") == rpc_code
    assert span.status.status_code is StatusCode.ERROR


def test_handler_exception_records_error_type_and_propagates(recorder):
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(recorder.instrumentation.wrap(answer)(tools_call("crash")))
    (span,) = recorder.finished()
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_no_span_leaks_between_requests(recorder):
    handler = recorder.instrumentation.wrap(answer)
    other_trace = "0af7651916cd43dd8448eb211c80319c"

    async def sequence():
        await handler(tools_call("echo", 1))
        assert not trace.get_current_span().get_span_context().is_valid  # detached after the request
        await handler(tools_call("echo", 2, meta={"traceparent": f"00-{other_trace}-b7ad6b7169203331-01"}))
        await handler(tools_call("echo", 3, meta={}))  # no trace context: a fresh trace
        await asyncio.gather(*(handler(tools_call("echo", n)) for n in range(4, 8)))
        assert not trace.get_current_span().get_span_context().is_valid

    asyncio.run(sequence())
    spans = {span.attributes["jsonrpc.request.id"]: span for span in recorder.finished()}
    assert len(spans) == 7
    assert format(spans["2"].context.trace_id, "032x") == other_trace
    assert spans["3"].parent is None
    assert format(spans["3"].context.trace_id, "032x") not in {TRACE_ID, other_trace}
    for n in range(4, 8):  # concurrent requests each hang off the caller, never off each other
        assert spans[str(n)].parent.span_id == int(CALLER_SPAN_ID, 16)


def test_malformed_traceparent_starts_a_new_trace(recorder):
    asyncio.run(recorder.instrumentation.wrap(answer)(tools_call("echo", meta={"traceparent": "00-zz-yy-01"})))
    (span,) = recorder.finished()
    assert span.parent is None and span.context.trace_id != int(TRACE_ID, 16)


def test_other_methods_are_named_after_the_method_and_target(recorder):
    async def ok(message):
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": {}}

    handler = recorder.instrumentation.wrap(ok)
    messages = [
        {"jsonrpc": "2.0", "id": "a", "method": "resources/read", "params": {"uri": "fact://sun", "_meta": META}},
        {"jsonrpc": "2.0", "id": "b", "method": "prompts/get", "params": {"name": "greet", "_meta": META}},
        {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    for message in messages:
        asyncio.run(handler(message))
    read, prompt, initialize, notification = recorder.finished()
    assert read.name == "resources/read" and read.attributes["mcp.resource.uri"] == "fact://sun"
    assert prompt.name == "prompts/get greet" and prompt.attributes["gen_ai.prompt.name"] == "greet"
    assert initialize.attributes["mcp.protocol.version"] == "2025-11-25"
    assert notification.name == "notifications/initialized"
    assert "jsonrpc.request.id" not in notification.attributes


def test_duration_metric_by_tool_and_outcome(recorder):
    handler = recorder.instrumentation.wrap(answer)

    async def calls():
        for tool in ("echo", "echo", "echo", "unknown", "broken"):
            await handler(tools_call(tool))

    asyncio.run(calls())
    counts = {
        (p.attributes["gen_ai.tool.name"], p.attributes.get("error.type", "ok")): p.count
        for p in recorder.duration_points()
    }
    assert counts == {("echo", "ok"): 3, ("unknown", "-32602"): 1, ("broken", "tool_error"): 1}
    assert all(p.attributes["mcp.method.name"] == "tools/call" and p.sum >= 0 for p in recorder.duration_points())


def test_service_name_and_instance_come_from_the_slot_and_instance_id():
    environ = {"MCP_SLOT_NAME": "staging", "WEBSITE_INSTANCE_ID": "abc123"}
    assert telemetry.resource_attributes(environ) == {
        "service.name": "mcp-server-staging",
        "service.instance.id": "abc123",
        "deployment.environment.name": "staging",
    }
    assert telemetry.resource_attributes({})["service.name"] == "mcp-server-local"


def test_without_a_connection_string_nothing_is_wrapped_or_imported():
    assert telemetry.setup({}) is None
    assert telemetry.instrument(answer, None) is answer
    # In a fresh interpreter: loading the app with telemetry off must not import
    # the exporter or the OpenTelemetry SDK (the mcp SDK imports only the API).
    probe = (
        "import sys, json, app.main, app.telemetry as t;"
        "print(json.dumps({'azure': 'azure.monitor.opentelemetry' in sys.modules,"
        " 'sdk': 'opentelemetry.sdk' in sys.modules,"
        " 'setup': t.setup() is None}))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"azure": False, "sdk": False, "setup": True}


# --- end to end: the real server, the real Azure Monitor exporter, a local ingestion endpoint ---


class FakeIngestion:
    """Stands in for the Application Insights ingestion (and live metrics) endpoint on 127.0.0.1."""

    def __init__(self) -> None:
        self.envelopes: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received = 0
                if self.path.startswith("/v2.1/track") or self.path.startswith("/v2/track"):
                    items = json.loads(body)
                    items = items if isinstance(items, list) else [items]
                    with outer._lock:
                        outer.envelopes.extend(items)
                    received = len(items)
                answer = json.dumps({"itemsReceived": received, "itemsAccepted": received, "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, base_type: str) -> list[dict]:
        with self._lock:
            return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := predicate():
                return found
            time.sleep(0.1)
        raise AssertionError(f"ingestion endpoint never received the expected telemetry; got {self.envelopes!r}")


def post_mcp(url: str, message: dict) -> httpx.Response:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": message["method"],
    }
    if message["method"] == "tools/call":
        headers["Mcp-Name"] = message["params"]["name"]
    return httpx.post(url, json=message, headers=headers, timeout=10)


def test_end_to_end_requests_rows_carry_the_workbook_contract():
    ingestion = FakeIngestion()
    env = {
        telemetry.CONNECTION_STRING_ENV: "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={ingestion.url};LiveEndpoint={ingestion.url}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat would go to Microsoft's endpoint
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "MCP_SLOT_NAME": "staging",
        "WEBSITE_INSTANCE_ID": "instance-e2e",
    }
    try:
        with running_server(env=env) as server:
            meta = {**META, "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}}
            echo = tools_call("echo", 11, meta=meta)
            echo["params"]["arguments"] = {"text": "hi"}
            ok = post_mcp(server.mcp_url, echo)
            assert ok.status_code == 200, ok.text
            bad = post_mcp(server.mcp_url, tools_call("no_such_tool", 12, meta=meta))
            assert bad.status_code == 400, bad.text
            httpx.get(server.url + "/health", timeout=5)

            def mcp_requests():
                rows = [e for e in ingestion.of_type("RequestData") if "mcp.method.name" in e["data"]["baseData"].get("properties", {})]
                return rows if len(rows) >= 2 else None

            requests_rows = ingestion.wait_for(mcp_requests)
            metric_rows = ingestion.wait_for(
                lambda: [
                    e
                    for e in ingestion.of_type("MetricData")
                    if e["data"]["baseData"]["metrics"][0]["name"] == telemetry.METRIC_OPERATION_DURATION
                ]
            )
            time.sleep(0.5)  # anything else (duplicates, /health) would have been flushed by now
    finally:
        ingestion.server.shutdown()

    all_requests = ingestion.of_type("RequestData")
    assert len(all_requests) == 2, [r["data"]["baseData"]["name"] for r in all_requests]  # one per MCP message, none for /health
    by_id = {r["data"]["baseData"]["properties"]["jsonrpc.request.id"]: r for r in requests_rows}
    ok_row, bad_row = by_id["11"], by_id["12"]
    for row in (ok_row, bad_row):
        assert row["tags"]["ai.operation.id"] == TRACE_ID
        assert row["tags"]["ai.operation.parentId"] == CALLER_SPAN_ID
        assert row["tags"]["ai.cloud.role"] == "mcp-server-staging"
        assert row["tags"]["ai.cloud.roleInstance"] == "instance-e2e"
    assert ok_row["data"]["baseData"]["name"] == "tools/call echo"
    assert ok_row["data"]["baseData"]["success"] is True
    assert ok_row["data"]["baseData"]["properties"]["gen_ai.tool.name"] == "echo"
    assert ok_row["data"]["baseData"]["properties"]["mcp.protocol.version"] == "2026-07-28"
    assert bad_row["data"]["baseData"]["success"] is False
    assert bad_row["data"]["baseData"]["properties"]["error.type"] == "-32602"
    tools = {m["data"]["baseData"]["properties"].get("gen_ai.tool.name") for m in metric_rows}
    assert {"echo", "no_such_tool"} <= tools
