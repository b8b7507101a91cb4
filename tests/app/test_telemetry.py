"""Telemetry: one SERVER span per MCP message continuing the caller's trace,
MCP semantic-convention attributes, a duration metric by tool and outcome,
the Easy Auth caller's id on spans and one audit record per tool call it makes,
and nothing at all when no connection string is set."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

from app import telemetry
from app.main import create_app
from app.protocol import Exchange
from app.telemetry import McpInstrumentation
from bench.ingestion import Ingestion
from components import workbook
from tests.app.serving import PROJECT_ROOT, running_server
from tests.app.test_identity import ALICE, ALICE_HEADERS, BOB, BOB_HEADERS, PRIMES_ROLE
from tests.infra.kusto.checker import kql_diagnostics

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
        "DIM_ERROR_TYPE",
        "DIM_ERROR_CODE",
        "SERVICE_NAME_PREFIX",
        "METRIC_OPERATION_DURATION",
        "AUDIT_EVENT",
        "DIM_OUTCOME",
        "OUTCOME_OK",
        "MEASURE_DURATION_MS",
    ):
        assert getattr(telemetry, name) == getattr(workbook, name), name


def test_tools_call_continues_the_trace_from_meta_with_mcp_attributes(recorder):
    (response,) = recorder.send(tools_call("echo", request_id=7, arguments={"message": "hi"}))
    assert response.status_code == 200 and response.json()["result"]["structuredContent"]["message"] == "hi"

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
    tracer = recorder.tracer_provider.get_tracer("transport")

    async def via_http_span():
        async with recorder.client() as client:
            with tracer.start_as_current_span("POST /mcp", kind=SpanKind.SERVER) as http_span:
                message = tools_call("whoami")
                await client.post("/mcp", json=message, headers=headers_for(message))
                return http_span.get_span_context()

    http_context = asyncio.run(via_http_span())
    mcp_span = next(s for s in recorder.finished() if s.name == "tools/call whoami")
    assert format(mcp_span.context.trace_id, "032x") == TRACE_ID
    assert [link.context.span_id for link in mcp_span.links] == [http_context.span_id]


@pytest.mark.parametrize(
    ("tool", "arguments", "http_status", "error_type", "rpc_code"),
    [
        ("no_such_tool", {}, 400, "-32602", "-32602"),  # JSON-RPC error
        ("compute_primes", {"limit": 1}, 200, "tool_error", None),  # isError result
    ],
)
def test_failing_call_records_error_type_and_error_status(recorder, tool, arguments, http_status, error_type, rpc_code):
    (response,) = recorder.send(tools_call(tool, arguments=arguments))
    assert response.status_code == http_status
    (span,) = recorder.finished()
    assert span.attributes["gen_ai.tool.name"] == tool
    assert span.attributes["error.type"] == span.attributes["mcp.error.type"] == error_type
    assert span.attributes.get("rpc.response.status_code") == span.attributes.get("jsonrpc.error.code") == rpc_code
    assert span.status.status_code is StatusCode.ERROR


def test_protocol_errors_are_failures_of_the_method(recorder):
    responses = recorder.send(
        {"jsonrpc": "2.0", "id": 1, "method": "no/such/method-" + "x" * 40, "params": {"_meta": META}},
        # modern, but _meta lacks the required client capabilities
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        },
    )
    assert [r.status_code for r in responses] == [404, 400]
    unknown, missing_meta = recorder.finished()
    assert unknown.name == "_OTHER" and unknown.attributes["mcp.method.name"] == "_OTHER"  # no cardinality blow-up
    assert unknown.attributes["error.type"] == "-32601"
    assert missing_meta.attributes["mcp.method.name"] == "tools/list"
    assert missing_meta.attributes["error.type"] == "-32602"


def test_middleware_exception_records_error_type_and_propagates(recorder):
    async def crash(exchange):
        raise RuntimeError("boom")

    exchange = Exchange(headers={}, message=tools_call("echo"))
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(recorder.instrumentation.middleware(exchange, crash))
    (span,) = recorder.finished()
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_no_span_leaks_between_requests(recorder):
    other_trace = "0af7651916cd43dd8448eb211c80319c"

    async def sequence():
        async with recorder.client() as client:

            async def send(message):
                return await client.post("/mcp", json=message, headers=headers_for(message))

            await send(tools_call("whoami", 1))
            assert not trace.get_current_span().get_span_context().is_valid  # detached after the request
            await send(tools_call("whoami", 2, meta={**META, "traceparent": f"00-{other_trace}-b7ad6b7169203331-01"}))
            no_context = {k: v for k, v in META.items() if k not in ("traceparent", "tracestate")}
            await send(tools_call("whoami", 3, meta=no_context))  # no trace context: a fresh trace
            await asyncio.gather(*(send(tools_call("whoami", n)) for n in range(4, 8)))
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
    recorder.send(tools_call("whoami", meta={**META, "traceparent": "00-zz-yy-01"}))
    (span,) = recorder.finished()
    assert span.parent is None and span.context.trace_id != int(TRACE_ID, 16)


def test_other_methods_legacy_requests_and_notifications(recorder):
    recorder.send(
        {"jsonrpc": "2.0", "id": "a", "method": "resources/read", "params": {"uri": "fact://mcp", "_meta": META}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},  # legacy, no headers
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    )
    read, initialize, legacy_list, notification = recorder.finished()
    assert read.name == "resources/read" and read.attributes["mcp.resource.uri"] == "fact://mcp"
    assert "error.type" not in read.attributes
    assert initialize.name == "initialize" and initialize.attributes["mcp.protocol.version"] == "2025-11-25"
    assert legacy_list.attributes["mcp.protocol.version"] == "2025-03-26"  # legacy default without a header
    assert notification.name == "notifications/initialized"
    assert "jsonrpc.request.id" not in notification.attributes


def test_duration_metric_by_tool_and_outcome(recorder):
    recorder.send(
        *(tools_call("echo", n, arguments={"message": "x"}) for n in range(3)),
        tools_call("no_such_tool"),
        tools_call("compute_primes", arguments={"limit": 1}),
    )
    counts = {
        (p.attributes["gen_ai.tool.name"], p.attributes.get("error.type", "ok")): p.count
        for p in recorder.duration_points()
    }
    assert counts == {("echo", "ok"): 3, ("no_such_tool", "-32602"): 1, ("compute_primes", "tool_error"): 1}
    assert all(p.attributes["mcp.method.name"] == "tools/call" and p.sum > 0 for p in recorder.duration_points())


def test_the_duration_histogram_exports_what_the_sdk_histogram_aggregates():
    """Same points as the SDK's explicit-bucket histogram (delta, the same bounds) for the same measurements: count,
    sum, min, max and bucket counts per attribute set, each interval holding only what came after the last."""
    sdk_reader = InMemoryMetricReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})
    sdk_histogram = (
        MeterProvider(metric_readers=[sdk_reader])
        .get_meter("reference")
        .create_histogram("d", unit="s", explicit_bucket_boundaries_advisory=telemetry._DURATION_BUCKETS_S)
    )
    exported = KeptMetrics()
    ours = telemetry.DurationHistogram(exported, TracerProvider().resource)
    rng = random.Random(7)
    keys = [("tools/call", "echo", None), ("tools/call", "nope", "-32602"), ("tools/list", None, None)]
    on_a_bound_or_past_the_last = (0.01, 0.05, 300.0, 999.0)

    def interval(n: int) -> tuple[dict, dict]:
        for _ in range(n):
            key = rng.choice(keys)
            seconds = rng.choice(on_a_bound_or_past_the_last) if rng.random() < 0.2 else rng.expovariate(40)
            ours.add(seconds, *key)
            sdk_histogram.record(seconds, telemetry._duration_attributes(*key))
        ours.on_collect(None)
        sdk_points = data_points([sdk_reader.get_metrics_data()], "d")
        our_points = exported.points(telemetry.METRIC_OPERATION_DURATION)
        exported.exported.clear()
        return {frozenset(p.attributes.items()): p for p in our_points}, {
            frozenset(p.attributes.items()): p for p in sdk_points
        }

    for n in (500, 40):
        got, expected = interval(n)
        assert got.keys() == expected.keys()
        for key, point in got.items():
            reference = expected[key]
            assert (point.count, point.min, point.max, list(point.bucket_counts)) == (
                reference.count, reference.min, reference.max, list(reference.bucket_counts)
            )  # fmt: skip
            assert point.sum == pytest.approx(reference.sum, rel=1e-12)
            assert tuple(point.explicit_bounds) == tuple(reference.explicit_bounds)
    ours.on_collect(None)
    assert exported.exported == []  # an interval without messages exports nothing


@contextlib.contextmanager
def threads_interleaving_at_almost_every_bytecode():
    """The interpreter switching threads every microsecond: races that need a switch at one spot happen."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(switch_interval)


def test_no_measurement_is_lost_to_a_collection_running_meanwhile(monkeypatch):
    """Measurements are queued without a lock and folded in batches: a collection on the reader's thread, at any
    moment, takes each of them exactly once."""
    monkeypatch.setattr(telemetry.DurationHistogram, "FOLD_EVERY", 2_000)  # long folds: more to race with
    exported = KeptMetrics()
    ours = telemetry.DurationHistogram(exported, TracerProvider().resource)
    total, adding = 100_000, threading.Event()

    def add_all():
        adding.set()
        for _ in range(total):
            ours.add(0.001, "tools/call", "whoami", None)

    adder = threading.Thread(target=add_all)
    with threads_interleaving_at_almost_every_bytecode():
        adder.start()
        adding.wait()
        while adder.is_alive():
            ours.on_collect(None)
        adder.join()
    ours.on_collect(None)
    counts = [point.count for point in exported.points(telemetry.METRIC_OPERATION_DURATION)]
    assert sum(counts) == total
    assert len(counts) > 2  # collections did run while measurements were being added


# --- the caller (Easy Auth): enduser.id and the audit record ------------------

EASY_AUTH = {"WEBSITE_AUTH_ENABLED": "True", "MCP_TOOL_ROLES": json.dumps({"compute_primes": [PRIMES_ROLE]})}


def recorded_text(recorder: Recorder) -> str:
    """Every span's name and attributes and every log record the recorder holds, as one text to search."""
    items = [{"name": span.name, **span.attributes} for span in recorder.finished()]
    items += [{"body": r.log_record.body, **r.log_record.attributes} for r in recorder.logs.get_finished_logs()]
    return json.dumps(items, default=str)


@pytest.mark.parametrize(
    ("headers", "caller", "tool", "arguments", "outcome"),
    [
        (ALICE_HEADERS, ALICE, "whoami", {}, "ok"),
        (ALICE_HEADERS, ALICE, "compute_primes", {"limit": 1}, "tool_error"),
        (ALICE_HEADERS, ALICE, "no_such_tool", {}, "-32602"),
        (BOB_HEADERS, BOB, "compute_primes", {"limit": 10}, "-32602"),  # refused: Bob lacks the role
    ],
)
def test_a_tool_call_behind_easy_auth_carries_the_callers_id_and_leaves_one_audit_record(
    headers, caller, tool, arguments, outcome
):
    recorder = Recorder(EASY_AUTH)
    recorder.send(tools_call(tool, arguments=arguments), headers=headers)
    (span,) = recorder.finished()
    assert span.attributes["enduser.id"] == caller
    (record,) = recorder.audit_records()
    assert record.body == "mcp.tool_call"
    assert record.attributes["enduser.id"] == caller
    assert record.attributes["gen_ai.tool.name"] == tool
    assert record.attributes["mcp.outcome"] == outcome
    assert 0 < record.attributes["microsoft.custom_measurements"]["duration_ms"] < 60_000
    # In the span's context: the caller's trace id (-> operation_Id) and the span's id (-> operation_ParentId).
    assert (record.trace_id, record.span_id) == (int(TRACE_ID, 16), span.context.span_id)
    assert "@contoso.example" not in recorded_text(recorder)  # the caller's name never leaves the request


def test_the_audit_record_is_kept_when_the_sampler_drops_the_span():
    recorder = Recorder(EASY_AUTH, sampler=ALWAYS_OFF)
    recorder.send(tools_call("whoami"), headers=ALICE_HEADERS)
    assert not recorder.finished()
    (record,) = recorder.audit_records()
    assert record.attributes["enduser.id"] == ALICE and record.trace_id == int(TRACE_ID, 16)


def test_other_requests_carry_the_callers_id_but_leave_no_audit_record():
    recorder = Recorder(EASY_AUTH)  # with tool roles, tools/list is answered for its caller
    (response,) = recorder.send(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}, headers=ALICE_HEADERS
    )
    assert response.status_code == 200
    (span,) = recorder.finished()
    assert span.attributes["enduser.id"] == ALICE
    assert not recorder.logs.get_finished_logs()


def test_the_audit_query_the_module_docstring_gives_is_valid_kql():
    query = textwrap.dedent(telemetry.__doc__.split("Query it with::\n\n", 1)[1].split("\n\n", 1)[0])
    assert query.startswith("customEvents") and f'name == "{telemetry.AUDIT_EVENT}"' in query
    (diagnostics,) = kql_diagnostics({"docstring": query}).values()
    assert not [d for d in diagnostics if d["severity"] == "Error"], diagnostics


@pytest.mark.parametrize(
    ("environ", "headers"), [(EASY_AUTH, {}), ({}, ALICE_HEADERS)], ids=["anonymous", "headers-without-easy-auth"]
)
def test_a_call_without_a_caller_records_no_user_and_no_audit_record(environ, headers):
    recorder = Recorder(environ)
    responses = recorder.send(tools_call("whoami"), tools_call("no_such_tool", 2), headers=headers)
    assert [r.status_code for r in responses] == [200, 400]
    assert len(recorder.finished()) == 2
    assert not recorder.logs.get_finished_logs()
    assert "enduser.id" not in recorded_text(recorder) and ALICE not in recorded_text(recorder)


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
    assert telemetry.message_middleware({}) == []
    # In a fresh interpreter: loading the app with telemetry off must not import
    # the exporter or the OpenTelemetry SDK (the mcp SDK imports only the API),
    # and the transport's handler must be the dispatcher itself, unwrapped.
    probe = (
        "import sys, json, app.main as m;"
        "print(json.dumps({'azure': 'azure.monitor.opentelemetry' in sys.modules,"
        " 'sdk': 'opentelemetry.sdk' in sys.modules,"
        " 'unwrapped': m.app.mcp.handler == m.app.dispatcher.handle}))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"azure": False, "sdk": False, "unwrapped": True}


# --- end to end: the real server, the real Azure Monitor exporter, a local ingestion endpoint ---


class FakeIngestion(Ingestion):
    """Stands in for the Application Insights ingestion (and live metrics) endpoint on 127.0.0.1, keeping rows."""

    def __init__(self) -> None:
        super().__init__(keep=True)

    def of_type(self, base_type: str) -> list[dict]:
        with self.lock:
            return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := predicate():
                return found
            time.sleep(0.1)
        raise AssertionError(f"ingestion endpoint never received the expected telemetry; got {self.envelopes!r}")


def post_mcp(url: str, message: dict, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=message, headers={**headers_for(message), **(headers or {})}, timeout=10)


def ingestion_env(ingestion: FakeIngestion, tmp_path) -> dict[str, str]:
    """The server's environment for exporting everything to ``ingestion``, promptly and unsampled."""
    return {
        # The exporter keeps telemetry it could not send under the temp folder, keyed by instrumentation key, and
        # retries it from any later process with the same key: a private temp folder keeps others' rows out.
        "TMPDIR": str(tmp_path),
        telemetry.CONNECTION_STRING_ENV: "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={ingestion.url};LiveEndpoint={ingestion.url}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat would go to Microsoft's endpoint
        "OTEL_TRACES_SAMPLER": "always_on",  # the distro's default rate limit could drop a span
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }


def mcp_request_rows(ingestion: FakeIngestion) -> list[dict]:
    """The ``requests`` rows of MCP messages received so far (FastAPI's own routes carry no mcp.method.name)."""
    return [r for r in ingestion.of_type("RequestData") if "mcp.method.name" in r["data"]["baseData"]["properties"]]


E2E_META = {**META, "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}}
# (tool, error.type) of the duration metric for the end-to-end test's two calls.
EXPECTED_OUTCOMES = {("echo", None), ("no_such_tool", "-32602")}


def duration_outcomes(ingestion: FakeIngestion) -> set[tuple[str | None, str | None]]:
    """(tool, error.type) of every data point of the operation-duration metric received so far."""
    return {
        (
            m["data"]["baseData"]["properties"].get("gen_ai.tool.name"),
            m["data"]["baseData"]["properties"].get("error.type"),
        )
        for m in ingestion.of_type("MetricData")
        if m["data"]["baseData"]["metrics"][0]["name"] == telemetry.METRIC_OPERATION_DURATION
    }


def test_end_to_end_requests_rows_carry_the_workbook_contract(tmp_path):
    ingestion = FakeIngestion()
    env = {**ingestion_env(ingestion, tmp_path), "MCP_SLOT_NAME": "staging", "WEBSITE_INSTANCE_ID": "instance-e2e"}
    try:
        with running_server(env=env) as server:
            ok = post_mcp(server.mcp_url, tools_call("echo", 11, meta=E2E_META, arguments={"message": "hi"}))
            assert ok.status_code == 200, ok.text
            bad = post_mcp(server.mcp_url, tools_call("no_such_tool", 12, meta=E2E_META))
            assert bad.status_code == 400, bad.text
            httpx.get(server.url + "/health", timeout=5)
            requests_rows = ingestion.wait_for(lambda: len(rows := mcp_request_rows(ingestion)) >= 2 and rows)
            # The two calls may land in different metric exports: wait until both outcomes have arrived.
            ingestion.wait_for(lambda: EXPECTED_OUTCOMES <= duration_outcomes(ingestion))
            time.sleep(0.5)  # anything else (duplicates, /health) would have been flushed by now
    finally:
        ingestion.server.shutdown()

    mcp_rows = mcp_request_rows(ingestion)
    assert len(mcp_rows) == 2, mcp_rows  # exactly one per MCP message: no second span from the SDK or FastAPI
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
    assert "mcp.error.type" not in ok_row["data"]["baseData"]["properties"]
    assert bad_row["data"]["baseData"]["success"] is False
    assert bad_row["data"]["baseData"]["properties"]["mcp.error.type"] == "-32602"
    assert bad_row["data"]["baseData"]["properties"]["jsonrpc.error.code"] == "-32602"
    assert EXPECTED_OUTCOMES <= duration_outcomes(ingestion)
    # The exporter's per-export INFO logging must not be exported (it would feed
    # itself); its warnings (e.g. a failed transmission) may be.
    chatter = [
        (e["data"]["baseData"]["properties"].get("logger_name"), e["data"]["baseData"]["message"][:200])
        for e in ingestion.of_type("MessageData")
        if e["data"]["baseData"]["properties"].get("logger_name", "").startswith("azure")
        and e["data"]["baseData"].get("severityLevel", 0) < 2  # below Warning
    ]
    assert not chatter, chatter


def test_end_to_end_the_callers_id_and_one_audit_event_per_call_reach_application_insights(tmp_path):
    ingestion = FakeIngestion()
    env = {**ingestion_env(ingestion, tmp_path), "WEBSITE_AUTH_ENABLED": "True"}
    try:
        with running_server(env=env) as server:
            alice = post_mcp(server.mcp_url, tools_call("whoami", 21, meta=E2E_META), headers=ALICE_HEADERS)
            assert alice.json()["result"]["structuredContent"]["caller"]["name"] == "alice@contoso.example"
            refused = post_mcp(server.mcp_url, tools_call("no_such_tool", 22, meta=E2E_META), headers=ALICE_HEADERS)
            assert refused.status_code == 400, refused.text
            anonymous = post_mcp(server.mcp_url, tools_call("whoami", 23, meta=E2E_META))
            assert anonymous.json()["result"]["structuredContent"]["caller"] is None
            ingestion.wait_for(lambda: len(mcp_request_rows(ingestion)) >= 3)
            ingestion.wait_for(lambda: len(ingestion.of_type("EventData")) >= 2)
            time.sleep(0.5)  # an audit event for the anonymous call would have been flushed by now
    finally:
        ingestion.server.shutdown()

    rows = {r["data"]["baseData"]["properties"]["jsonrpc.request.id"]: r for r in mcp_request_rows(ingestion)}
    assert rows["21"]["tags"]["ai.user.authUserId"] == rows["22"]["tags"]["ai.user.authUserId"] == ALICE
    assert "ai.user.authUserId" not in rows["23"]["tags"]
    events = ingestion.of_type("EventData")
    assert len(events) == 2, events  # one per call with a caller, none for the anonymous one
    by_span = {event["tags"]["ai.operation.parentId"]: event for event in events}
    for request_id, tool, outcome in (("21", "whoami", "ok"), ("22", "no_such_tool", "-32602")):
        event = by_span[rows[request_id]["data"]["baseData"]["id"]]  # the audit event joins its requests row
        assert event["data"]["baseData"]["name"] == "mcp.tool_call"
        assert event["tags"]["ai.user.authUserId"] == ALICE
        assert event["tags"]["ai.operation.id"] == TRACE_ID
        properties = event["data"]["baseData"]["properties"]
        assert properties["gen_ai.tool.name"] == tool and properties["mcp.outcome"] == outcome
        assert "enduser.id" not in properties
        assert event["data"]["baseData"]["measurements"]["duration_ms"] > 0
    assert "@contoso.example" not in json.dumps(ingestion.envelopes)  # the caller's name never leaves the server


def test_the_fast_djb2_score_is_the_distros():
    from azure.monitor.opentelemetry.exporter.export.trace._utils import _get_DJB2_sample_score
    from opentelemetry.trace import format_trace_id

    rng = random.Random(7)
    ids = [0, 1, 2**128 - 1, *(rng.getrandbits(128) for _ in range(20_000))]
    for trace_id in ids:
        assert telemetry.djb2_sample_score(trace_id) == _get_DJB2_sample_score(format_trace_id(trace_id).lower())


@pytest.mark.parametrize("runtime", ["contextvars", "another"])
def test_current_context_sets_and_restores_the_context_the_api_does(monkeypatch, runtime):
    """telemetry.CurrentContext: the default runtime context's ContextVar read and set directly, any other runtime
    through the API, with the context the API's set_span_in_context builds."""
    from opentelemetry import context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    attached = []

    class AnotherRuntime(ContextVarsRuntimeContext):
        def attach(self, ctx):
            attached.append(ctx)
            return super().attach(ctx)

    if runtime == "another":
        monkeypatch.setattr(context, "_RUNTIME_CONTEXT", AnotherRuntime())
    current = telemetry.CurrentContext()

    def make_current(span):
        return current.set(current.Context({**current.get(), current.span_key: span}))  # as the middleware does

    outer, inner = (NonRecordingSpan(SpanContext(trace_id, 7, False)) for trace_id in (1, 2))
    other_key = context.create_key("other")
    other_token = context.attach(context.set_value(other_key, "kept"))
    try:
        outer_token = make_current(outer)
        assert trace.get_current_span() is outer and current.get().get(current.span_key) is outer
        assert context.get_value(other_key) == "kept"
        expected = trace.set_span_in_context(inner)
        inner_token = make_current(inner)
        assert context.get_current() == expected  # the rest of the context carried over, as the API carries it
        current.reset(inner_token)
        assert trace.get_current_span() is outer
        current.reset(outer_token)
        assert current.get().get(current.span_key) is None and context.get_value(other_key) == "kept"
    finally:
        context.detach(other_token)
    # Another runtime is reached through the API alone: both spans went through its attach.
    assert sum(current.span_key in ctx for ctx in attached) == (2 if runtime == "another" else 0)


def test_a_message_finished_in_another_context_logs_the_detach_as_the_api_does(caplog):
    import contextvars

    provider = TracerProvider(sampler=ALWAYS_OFF)
    instrumentation = McpInstrumentation(
        provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), LoggerProvider(), KeptMetrics()
    )

    async def handler(exchange):
        await asyncio.sleep(0)  # suspends the middleware once
        return "answer"

    steps = instrumentation.middleware(Exchange(headers={}, message=tools_call("whoami", meta={})), handler)
    contextvars.copy_context().run(steps.send, None)
    with pytest.raises(StopIteration) as finished:
        contextvars.copy_context().run(steps.send, None)
    assert finished.value.value == "answer"
    assert "Failed to detach context" in caplog.text


def test_the_shared_rate_percentage_gives_the_distros_percentages_on_the_same_clock(monkeypatch):
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import (
        RateLimitedSamplingPercentage,
    )

    rng = random.Random(11)
    start = time.time_ns()
    # Bursts (several spans on one clock tick), steady load and idle gaps, as a server sees them.
    steps = rng.choices([0, 1_000, 50_000, 100_000, 2_000_000, 3_000_000_000], weights=[10, 10, 40, 30, 5, 1], k=5_000)
    scores = [rng.choice([rng.uniform(0, 100), rng.uniform(0, 1)]) for _ in steps]
    for round_to_nearest in (True, False):
        ticks = list(itertools.accumulate(steps, initial=start))
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        distro = RateLimitedSamplingPercentage(5.0, round_to_nearest)
        expected = [distro.get() for _ in steps]
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        ours = telemetry.SharedRatePercentage(RateLimitedSamplingPercentage(5.0, round_to_nearest))
        assert [ours.get() for _ in steps] == expected
        # With deferral: every percentage given is the distro's, and a deferred tick is one the distro drops.
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        ours = telemetry.SharedRatePercentage(RateLimitedSamplingPercentage(5.0, round_to_nearest))
        given = [ours.percentage_unless_dropped(score) for score in scores]
        assert [p for p in given if p is not None] == [p for p, g in zip(expected, given, strict=True) if g is not None]
        assert all(score >= p for score, p, g in zip(scores, expected, given, strict=True) if g is None)
        assert len(steps) / 4 < given.count(None) < len(steps) - 100  # high scores under load were deferred
    assert len(set(expected)) > 10  # the rate moved: the decay and both branches were exercised


def test_no_rate_tick_is_lost_when_threads_share_the_rate(monkeypatch):
    """Dropped spans queue their ticks without the lock while other threads update the rate exactly: every tick is
    applied once. On a stopped clock each tick adds exactly 1 to the rate's count, so the count is the tick count."""
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import (
        RateLimitedSamplingPercentage,
    )

    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)
    monkeypatch.setattr(telemetry.SharedRatePercentage, "DEFER_MAX", 5_000)  # long updates: more to race with
    per_thread, threads = 20_000, 4

    def ticks_applied_and_deferred() -> tuple[float, int]:
        ours = telemetry.SharedRatePercentage(RateLimitedSamplingPercentage(5.0))
        deferred = []

        def tick_many(exact_every: int):
            given = [
                ours.get() if i % exact_every == 0 else ours.percentage_unless_dropped(99.0) for i in range(per_thread)
            ]
            deferred.append(given.count(None))

        workers = [threading.Thread(target=tick_many, args=(every,)) for every in (1, 7, 1_000, 100_000)[:threads]]
        with threads_interleaving_at_almost_every_bytecode():
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        ours.get()  # applies whatever is still queued, and its own tick
        return ours._count, sum(deferred)

    for _ in range(4):  # a lost tick needs a switch at one spot: several runs make it near certain to show
        applied, deferred = ticks_applied_and_deferred()
        assert applied == per_thread * threads + 1
        assert deferred > per_thread  # the lock-free path was taken, by several threads at once


def test_a_forked_process_draws_trace_ids_of_its_own():
    """The trace ids drawn ahead (with their scores) stay in the process that drew them."""
    telemetry._draw_scored_trace_ids()
    assert all(
        score == telemetry.djb2_sample_score(trace_id) * 100.0 for trace_id, score in telemetry._SCORED_TRACE_IDS
    )
    pid = os.fork()
    if pid == 0:
        os._exit(1 if telemetry._SCORED_TRACE_IDS else 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert telemetry._SCORED_TRACE_IDS  # the parent keeps its own


def test_the_same_decision_sampler_decides_and_stamps_as_the_distros_sampler(monkeypatch):
    """Same clock, same trace ids: the same decision, sample rate (-> itemCount) and trace state, span for span."""
    from azure.monitor.opentelemetry.exporter.export.trace import _rate_limited_sampling
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    rng = random.Random(11)
    trace_ids = [rng.getrandbits(128) for _ in range(3000)]
    # Bursts and pauses, so the rate limiter moves through several sample rates, 100 % included.
    clock = list(
        itertools.accumulate(rng.choices((10_000, 100_000, 5_000_000, 900_000_000), weights=(60, 30, 8, 2), k=3000))
    )
    remote_parent = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(trace_ids[0], 0x1234, is_remote=True, trace_flags=TraceFlags(1)))
    )

    def decisions(make_sampler):
        ticks = iter([0, *clock])
        monkeypatch.setattr(_rate_limited_sampling.time, "time_ns", lambda: next(ticks))
        sampler = make_sampler(_rate_limited_sampling.RateLimitedSampler(5.0))
        return [
            (result.decision, dict(result.attributes or {}) if result.decision.is_sampled() else None)
            for result in (
                sampler.should_sample(remote_parent if i % 7 == 0 else None, trace_id, "tools/call")
                for i, trace_id in enumerate(trace_ids)
            )
        ]

    distro = decisions(lambda sampler: sampler)
    deferred = []
    exact_or_deferred = telemetry.SharedRatePercentage.percentage_unless_dropped

    def counted(self, score_percent):
        percentage = exact_or_deferred(self, score_percent)
        deferred.append(percentage is None)
        return percentage

    monkeypatch.setattr(telemetry.SharedRatePercentage, "percentage_unless_dropped", counted)
    ours = decisions(telemetry.SameDecisionSampler)
    assert ours == distro
    assert sum(deferred) > len(trace_ids) / 3  # most ticks under load took the deferred path, and changed nothing
    sampled = [attributes for decision, attributes in distro if decision.is_sampled()]
    assert 10 < len(sampled) < len(trace_ids)  # both outcomes exercised
    assert {a.get("_MS.sampleRate") for a in sampled} - {None}  # sample rates below 100 % were stamped


def test_decided_spans_record_what_the_distro_sampler_keeps_and_drop_the_rest_as_the_sdk_would(monkeypatch):
    """Sampling decided before a span exists (telemetry.DecidedSpans): a kept message's span is the SDK's, with the
    trace id it was scored on; a dropped one runs under an unsampled span of the right trace, never exported."""
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler

    from app.protocol import Reply

    # A clock 10 us on at every reading: the burst is fast whatever this machine's speed, so that the rate limiter
    # keeps some of it and drops some.
    monkeypatch.setattr(time, "time_ns", itertools.count(time.time_ns(), 10_000).__next__)
    provider = TracerProvider(sampler=RateLimitedSampler(20_000.0))
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    instrumentation = McpInstrumentation(
        provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), LoggerProvider(), KeptMetrics()
    )
    current: list = []

    async def handler(exchange):
        span = trace.get_current_span()
        current.append((span.get_span_context(), span.is_recording()))
        exchange.method = "tools/call"
        return Reply(200, b"{}")

    rng = random.Random(5)

    def message(i: int) -> dict:
        """Odd messages continue a caller's trace (each its own), even ones start a trace of their own."""
        meta = {key: value for key, value in META.items() if key not in ("traceparent", "tracestate")}
        if i % 2:
            meta["traceparent"] = f"00-{rng.getrandbits(128):032x}-{CALLER_SPAN_ID}-01"
        return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "whoami", "_meta": meta}}

    current_traceparents: dict[int, str] = {}

    async def drive():
        for i in range(3000):
            sent = message(i)
            if i % 2:
                current_traceparents[i] = sent["params"]["_meta"]["traceparent"].split("-")[1]
            await instrumentation.middleware(Exchange(headers={}, message=sent), handler)

    asyncio.run(drive())
    recorded = {span.context.span_id: span for span in exported.get_finished_spans()}
    assert 0 < len(recorded) < len(current)
    for i, (context, recording) in enumerate(current):
        if i % 2:
            assert f"{context.trace_id:032x}" == current_traceparents[i]
        if recording:
            kept = recorded[context.span_id]
            assert djb2_below(context.trace_id, kept.attributes.get("_MS.sampleRate", 100.0))
            assert (kept.parent is not None) == bool(i % 2)
        else:
            assert context.span_id not in recorded and not context.trace_flags.sampled


def djb2_below(trace_id: int, percentage: float) -> bool:
    return telemetry.djb2_sample_score(trace_id) * 100.0 < percentage
