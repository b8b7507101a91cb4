"""The per-message middleware: one SERVER span per MCP message continuing the caller's trace, MCP
semantic-convention attributes, a duration measurement by tool and outcome, and the Easy Auth caller's id on spans
with one audit record per tool call it makes."""

from __future__ import annotations

import asyncio
import contextvars
import json
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from app import telemetry
from app.protocol import Exchange
from app.telemetry import McpInstrumentation
from tests.app.telemetry.recording import (
    CALLER_SPAN_ID,
    META,
    TRACE_ID,
    KeptMetrics,
    Recorder,
    headers_for,
    tools_call,
)
from tests.app.test_identity import ALICE, ALICE_HEADERS, BOB, BOB_HEADERS, PRIMES_ROLE
from tests.infra.kusto.checker import kql_diagnostics


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


def test_a_message_finished_in_another_context_logs_the_detach_as_the_api_does(caplog):
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
