"""Setup: nothing at all when no connection string is set; with one, the real Azure Monitor exporter delivers the
workbook's contract, the caller's id and the audit events to (a local stand-in for) Application Insights."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from app import telemetry
from tests.app.serving import PROJECT_ROOT, running_server
from tests.app.telemetry.ingestion import FakeIngestion, ingestion_env, mcp_request_rows
from tests.app.telemetry.recording import CALLER_SPAN_ID, META, TRACE_ID, headers_for, tools_call
from tests.app.test_identity import ALICE, ALICE_HEADERS


def test_service_name_and_instance_come_from_the_slot_and_instance_id():
    environ = {"MCP_SLOT_NAME": "staging", "WEBSITE_INSTANCE_ID": "abc123", "MCP_REGION": "northeurope"}
    assert telemetry.resource_attributes(environ) == {
        "service.name": "mcp-server-staging",
        "service.instance.id": "abc123",
        "deployment.environment.name": "staging",
        "cloud.region": "northeurope",
    }
    assert telemetry.resource_attributes({})["service.name"] == "mcp-server-local"
    assert telemetry.resource_attributes({"REGION_NAME": "North Europe"})["cloud.region"] == "North Europe"
    assert telemetry.resource_attributes({})["cloud.region"] == "local"


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


def post_mcp(url: str, message: dict, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=message, headers={**headers_for(message), **(headers or {})}, timeout=10)


E2E_META = {**META, "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}}
# (tool, error.type) of the duration metric for the end-to-end test's two calls.
EXPECTED_OUTCOMES = {("echo", None), ("no_such_tool", "-32602")}


def duration_rows(ingestion: FakeIngestion) -> list[dict]:
    """The properties (customDimensions) of every operation-duration metric row received so far."""
    return [
        m["data"]["baseData"]["properties"]
        for m in ingestion.of_type("MetricData")
        if m["data"]["baseData"]["metrics"][0]["name"] == telemetry.METRIC_OPERATION_DURATION
    ]


def duration_outcomes(ingestion: FakeIngestion) -> set[tuple[str | None, str | None]]:
    """(tool, error.type) of every data point of the operation-duration metric received so far."""
    return {(row.get("gen_ai.tool.name"), row.get("error.type")) for row in duration_rows(ingestion)}


def test_end_to_end_requests_rows_carry_the_workbook_contract(tmp_path):
    ingestion = FakeIngestion()
    env = {
        **ingestion_env(ingestion, tmp_path),
        "MCP_SLOT_NAME": "staging",
        "WEBSITE_INSTANCE_ID": "instance-e2e",
        "MCP_REGION": "northeurope",
    }
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
        assert row["data"]["baseData"]["properties"]["cloud.region"] == "northeurope"
    assert ok_row["data"]["baseData"]["name"] == "tools/call echo"
    assert ok_row["data"]["baseData"]["success"] is True
    assert ok_row["data"]["baseData"]["properties"]["gen_ai.tool.name"] == "echo"
    assert ok_row["data"]["baseData"]["properties"]["mcp.protocol.version"] == "2026-07-28"
    assert "mcp.error.type" not in ok_row["data"]["baseData"]["properties"]
    assert bad_row["data"]["baseData"]["success"] is False
    assert bad_row["data"]["baseData"]["properties"]["mcp.error.type"] == "-32602"
    assert bad_row["data"]["baseData"]["properties"]["jsonrpc.error.code"] == "-32602"
    assert EXPECTED_OUTCOMES <= duration_outcomes(ingestion)
    assert {row["cloud.region"] for row in duration_rows(ingestion)} == {"northeurope"}
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
    env = {**ingestion_env(ingestion, tmp_path), "WEBSITE_AUTH_ENABLED": "True", "MCP_REGION": "swedencentral"}
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
        assert properties["cloud.region"] == "swedencentral"
        assert "enduser.id" not in properties
        assert event["data"]["baseData"]["measurements"]["duration_ms"] > 0
    assert "@contoso.example" not in json.dumps(ingestion.envelopes)  # the caller's name never leaves the server
