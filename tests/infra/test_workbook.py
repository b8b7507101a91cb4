"""The fleet workbook: valid Notebook/1.0, every Logs query valid KQL against the
Application Insights tables, and the panels the operators need."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components import workbook
from components.workbook import build_workbook
from tests.infra.kusto.checker import kql_diagnostics

SCHEMA_PATH = Path(__file__).with_name("schemas") / "workbook.schema.json"
PLAN_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.Web/serverfarms/plan-mcp"
)
WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.OperationalInsights/workspaces/logs-mcp"
)
AUTOSCALE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.Insights/autoscalesettings/autoscale-mcp"
)

# What a workbook substitutes for the time range parameter before it runs a
# query: a relative range from the picker, or a custom absolute range.
TIME_RANGE_FORMS = {
    "relative": "> ago(4h)",
    "absolute": "between (datetime(2026-07-28T00:00:00Z) .. datetime(2026-07-28T04:00:00Z))",
}
GRAIN = "5m"
PARAMETER_REFERENCE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]+)?\}")


def substitute_parameters(query: str, time_range: str) -> str:
    """The query as the workbook runs it; fails on any parameter the workbook does not define."""
    text = query.replace("{TimeRange:grain}", GRAIN).replace("{TimeRange}", time_range)
    leftover = PARAMETER_REFERENCE.findall(text)
    assert not leftover, f"query references undefined workbook parameters {leftover}:\n{query}"
    return text


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        if item["type"] == 12:
            yield from walk(item["content"]["items"])


def logs_items(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in walk(content["items"]) if item["type"] == 3 and item["content"]["queryType"] == 0]


def metrics_items(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in walk(content["items"]) if item["type"] == 10]


def errors(diagnostics: list[dict]) -> list[dict]:
    return [d for d in diagnostics if d["severity"] == "Error"]


@pytest.fixture(scope="module")
def content() -> dict[str, Any]:
    # What Azure receives: the JSON text the monitoring component puts in serializedData.
    return json.loads(json.dumps(build_workbook(PLAN_ID, WORKSPACE_ID, front_door=True)))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.fixture(scope="module")
def kusto_results(content) -> dict[str, list[dict]]:
    """Diagnostics for every Logs query under every time range form, one checker run per resource type.

    Each query is checked against the tables of the resource it runs on (its item's resourceType).
    """
    results: dict[str, list[dict]] = {}
    for resource_type in {item["content"]["resourceType"] for item in logs_items(content)}:
        queries = {
            f"{form}:{item['name']}": substitute_parameters(item["content"]["query"], time_range)
            for form, time_range in TIME_RANGE_FORMS.items()
            for item in logs_items(content)
            if item["content"]["resourceType"] == resource_type
        }
        results.update(kql_diagnostics(queries, resource_type))
    return results


# --- Notebook/1.0 schema -----------------------------------------------------


@pytest.mark.parametrize("autoscale_setting_id", [None, AUTOSCALE_ID])
def test_serialized_workbook_validates_against_the_notebook_schema(validator, autoscale_setting_id):
    serialized = json.dumps(build_workbook(PLAN_ID, WORKSPACE_ID, autoscale_setting_id=autoscale_setting_id))
    content = json.loads(serialized)
    validator.validate(content)
    assert content["version"] == "Notebook/1.0"


def test_schema_check_rejects_a_malformed_item(content, validator):
    broken = copy.deepcopy(content)
    broken["items"].append({"type": 3})  # a query item without content
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_item_names_are_unique(content):
    names = [item["name"] for item in walk(content["items"])]
    assert len(names) == len(set(names)), names


def test_plan_id_must_be_a_resource_id():
    with pytest.raises(ValueError, match="plan_id must be an Azure resource id.*'plan-mcp'"):
        build_workbook("plan-mcp", WORKSPACE_ID)
    with pytest.raises(ValueError, match="workspace_id must be an Azure resource id"):
        build_workbook(PLAN_ID, "logs-mcp")
    with pytest.raises(ValueError, match="autoscale_setting_id must be an Azure resource id"):
        build_workbook(PLAN_ID, WORKSPACE_ID, autoscale_setting_id="")


# --- KQL -----------------------------------------------------------------------


def test_every_logs_query_parses_and_type_checks(content, kusto_results):
    assert len(kusto_results) == len(TIME_RANGE_FORMS) * len(logs_items(content)) > 0
    failures = {name: errors(diagnostics) for name, diagnostics in kusto_results.items() if errors(diagnostics)}
    assert not failures, json.dumps(failures, indent=2)


def test_checker_rejects_a_misspelled_column_and_a_syntax_error(content):
    query = substitute_parameters(logs_items(content)[0]["content"]["query"], TIME_RANGE_FORMS["relative"])
    assert "cloud_RoleInstance" in query
    results = kql_diagnostics(
        {
            "misspelled": query.replace("cloud_RoleInstance", "cloud_RoleInstanse"),
            "unbalanced": query.replace("sum(itemCount)", "sum(itemCount", 1),
            "unknown_table": query.replace("requests", "request", 1),
        }
    )
    misspelled = errors(results["misspelled"])
    assert misspelled and "cloud_RoleInstanse" in misspelled[0]["message"]
    assert errors(results["unbalanced"])
    assert errors(results["unknown_table"])


def test_undefined_workbook_parameters_are_caught():
    with pytest.raises(AssertionError, match="undefined workbook parameters"):
        substitute_parameters("requests | where timestamp {TimeRang}", "> ago(1h)")


# --- time range ---------------------------------------------------------------


def test_time_range_parameter_drives_every_query_and_chart(content):
    parameters = [p for item in walk(content["items"]) if item["type"] == 9 for p in item["content"]["parameters"]]
    time_range = [p for p in parameters if p["name"] == workbook.TIME_RANGE_PARAMETER]
    assert len(time_range) == 1 and time_range[0]["type"] == 4 and time_range[0]["isRequired"]
    for item in logs_items(content):
        assert "{TimeRange}" in item["content"]["query"], item["name"]
        assert item["content"]["timeContextFromParameter"] == "TimeRange", item["name"]
    for item in metrics_items(content):
        assert item["content"]["timeContextFromParameter"] == "TimeRange", item["name"]


# --- panels -------------------------------------------------------------------


def item(content: dict[str, Any], name: str) -> dict[str, Any]:
    found = [i for i in walk(content["items"]) if i["name"] == name]
    assert found, f"no workbook item named {name!r}"
    return found[0]


def test_load_distribution_by_instance_as_table_and_timechart(content):
    table = item(content, "requests-per-instance")["content"]
    chart = item(content, "requests-per-instance-over-time")["content"]
    assert table["visualization"] == "table" and chart["visualization"] == "timechart"
    for panel in (table, chart):
        assert re.search(r"summarize .*by .*cloud_RoleInstance", panel["query"], re.DOTALL)
        assert 'isnotempty(customDimensions["mcp.method.name"])' in panel["query"]


def test_rate_and_latency_percentiles_by_method_and_tool(content):
    query = item(content, "latency-by-operation")["content"]["query"]
    for p in (50, 95, 99):
        assert f"percentile(duration, {p})" in query
    assert re.search(r"by method, tool\b", query)
    assert "calls_per_min" in query
    for name in ("rate-by-operation-over-time", "p95-by-operation-over-time"):
        panel = item(content, name)["content"]
        assert panel["visualization"] == "timechart" and "operation" in panel["query"]


def test_failures_by_tool_and_error_code(content):
    query = item(content, "failures-by-error-code")["content"]["query"]
    assert re.search(r"by method, tool, error_type, rpc_code", query)
    assert 'customDimensions["mcp.error.type"]' in query and 'customDimensions["jsonrpc.error.code"]' in query
    assert "failure_pct" in item(content, "failure-rate-by-tool")["content"]["query"]


def test_tool_call_metric_by_tool_and_outcome(content):
    query = item(content, "tool-calls-by-outcome")["content"]["query"]
    assert f'name == "{workbook.METRIC_OPERATION_DURATION}"' in query
    assert re.search(r"by slot, tool, outcome", query)


def test_calls_by_caller_and_tool_read_the_audit_events(content):
    panel = item(content, "calls-by-caller-and-tool")["content"]
    assert panel["visualization"] == "table" and panel["resourceType"] == "microsoft.insights/components"
    query = panel["query"]
    assert query.startswith("customEvents") and f'where name == "{workbook.AUDIT_EVENT}"' in query
    assert "caller = user_AuthenticatedId" in query  # the exporter's home for enduser.id
    assert 'customDimensions["gen_ai.tool.name"]' in query and 'customDimensions["mcp.outcome"]' in query
    assert 'customMeasurements["duration_ms"]' in query
    assert re.search(r"by caller, tool\b", query)
    # Audit records are never sampled, but itemCount keeps the count right if ingestion sampling is turned on.
    assert "calls = sum(itemCount)" in query


def test_rate_limit_refusals_by_tool_limit_and_caller_and_over_time(content):
    table = item(content, "refusals-by-tool-and-caller")["content"]
    chart = item(content, "refusals-over-time")["content"]
    assert (table["visualization"], chart["visualization"]) == ("table", "timechart")
    for query in (table["query"], chart["query"]):
        assert query.startswith("customMetrics") and f'where name == "{workbook.METRIC_RATE_LIMIT_REFUSALS}"' in query
        assert "refusals = sum(valueSum)" in query
    assert re.search(r"by tool, scope, caller", table["query"])


def test_the_refusal_panels_read_the_counter_as_the_azure_monitor_exporter_sends_it(content, monkeypatch):
    """The app's record_refusal through the real exporter to a local ingestion stand-in: the row's metric name and
    dimensions are the ones the panels read, and a row carries the count of refusals in its value, not its count."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from app.ratelimit import limiter
    from tests.app.telemetry.ingestion import FakeIngestion

    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")  # statsbeat would go to Microsoft
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")  # its own counts would outlive the stand-in
    ingestion = FakeIngestion()
    try:
        exporter = AzureMonitorMetricExporter(
            connection_string=ingestion.connection_string(), disable_offline_storage=True
        )
        provider = MeterProvider(
            metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)]
        )
        monkeypatch.setattr(metrics, "get_meter", provider.get_meter)
        monkeypatch.setattr(limiter, "_counter", None)
        refused = limiter.Refusal("compute_primes", "perCaller", None, 30)
        for _ in range(3):
            limiter.record_refusal(refused, "aad:alice")
        provider.force_flush()
        limiter.record_refusal(refused, "aad:alice")
        provider.force_flush()
        provider.shutdown()
    finally:
        ingestion.server.shutdown()
    rows = [
        e["data"]["baseData"]
        for e in ingestion.of_type("MetricData")
        if e["data"]["baseData"]["metrics"][0]["name"] == workbook.METRIC_RATE_LIMIT_REFUSALS
    ]
    assert [(row["metrics"][0]["value"], row["metrics"][0]["count"]) for row in rows] == [(3, 1), (1, 1)]
    query = item(content, "refusals-by-tool-and-caller")["content"]["query"]
    for row in rows:
        assert row["properties"] == {
            "gen_ai.tool.name": "compute_primes",
            "mcp.rate_limit.scope": "perCaller",
            "mcp.rate_limit.caller": "aad:alice",
        }
        for dimension in row["properties"]:
            assert f'customDimensions["{dimension}"]' in query


def test_checker_knows_the_custom_events_columns(content):
    query = substitute_parameters(
        item(content, "calls-by-caller-and-tool")["content"]["query"], TIME_RANGE_FORMS["relative"]
    )
    results = kql_diagnostics(
        {
            "good": query,
            "misspelled": query.replace("user_AuthenticatedId", "user_AuthenticatedID"),
            "metrics_table": query.replace("customEvents", "customMetrics", 1),  # no customMeasurements there
        }
    )
    assert not errors(results["good"])
    assert errors(results["misspelled"]) and errors(results["metrics_table"])


def test_production_and_staging_are_split_by_role_name(content):
    for name in ("slot-summary", "slot-traffic-over-time"):
        query = item(content, name)["content"]["query"]
        assert 'slot = replace_string(cloud_RoleName, "mcp-server-", "")' in query
        assert re.search(r"by (bin\(timestamp, \{TimeRange:grain\}\), )?slot\b", query)


def test_plan_cpu_per_instance_from_azure_monitor_metrics(content):
    panel = item(content, "plan-cpu-per-instance")["content"]
    assert panel["resourceIds"] == [PLAN_ID]
    assert panel["resourceType"] == "microsoft.web/serverfarms"
    (metric,) = panel["metrics"]
    assert metric["metric"] == "microsoft.web/serverfarms--CpuPercentage" and metric["splitBy"] == "Instance"
    assert "dcount(cloud_RoleInstance)" in item(content, "instances-over-time")["content"]["query"]


def test_autoscale_capacity_panel_only_with_an_autoscale_setting(content):
    assert not [i for i in walk(content["items"]) if i["name"] == "autoscale-capacity"]
    with_autoscale = build_workbook(PLAN_ID, WORKSPACE_ID, autoscale_setting_id=AUTOSCALE_ID)
    panel = item(with_autoscale, "autoscale-capacity")["content"]
    assert panel["resourceIds"] == [AUTOSCALE_ID]
    assert [m["metric"] for m in panel["metrics"]] == [
        "microsoft.insights/autoscalesettings--ObservedCapacity",
        "microsoft.insights/autoscalesettings--ScaleActionsInitiated",
    ]


def test_build_is_pure_and_deterministic():
    assert json.dumps(build_workbook(PLAN_ID, WORKSPACE_ID)) == json.dumps(build_workbook(PLAN_ID, WORKSPACE_ID))


# --- App Service logs (Log Analytics workspace) ---------------------------------


def test_app_service_log_panels_query_the_workspace(content):
    names = ("http-status-over-time", "http-5xx-by-path", "startup-failures")
    for name in names:
        panel = item(content, name)["content"]
        assert panel["resourceType"] == "microsoft.operationalinsights/workspaces", name
        assert panel["crossComponentResources"] == [WORKSPACE_ID], name
        assert "TimeGenerated {TimeRange}" in panel["query"], name
    telemetry = [i for i in logs_items(content) if i["name"] not in names and not i["name"].startswith("front-door")]
    assert telemetry and all(i["content"]["resourceType"] == "microsoft.insights/components" for i in telemetry)


def test_http_status_and_5xx_panels_read_the_http_logs(content):
    status = item(content, "http-status-over-time")["content"]
    assert status["query"].startswith("AppServiceHTTPLogs") and status["visualization"] == "timechart"
    assert "ScStatus / 100" in status["query"]
    errors = item(content, "http-5xx-by-path")["content"]
    assert errors["query"].startswith("AppServiceHTTPLogs") and "where ScStatus >= 500" in errors["query"]
    assert re.search(r"by slot, method = CsMethod, path = CsUriStem, status = ScStatus", errors["query"])


def test_startup_failures_panel_reads_the_console_logs(content):
    panel = item(content, "startup-failures")["content"]
    assert panel["query"].startswith("AppServiceConsoleLogs")
    assert "Traceback" in panel["query"] and 'Level =~ "Error"' in panel["query"]


def test_checker_rejects_an_app_insights_table_on_the_workspace(content):
    query = substitute_parameters(item(content, "http-5xx-by-path")["content"]["query"], TIME_RANGE_FORMS["relative"])
    results = kql_diagnostics(
        {
            "good": query,
            "wrong_table": query.replace("AppServiceHTTPLogs", "requests"),
            "wrong_column": query.replace("ScStatus >= 500", "ScStatu >= 500"),
        },
        "microsoft.operationalinsights/workspaces",
    )
    assert not errors(results["good"])
    assert errors(results["wrong_table"]) and errors(results["wrong_column"])


def test_every_mcp_panel_can_split_by_region_and_the_regions_group_does(content):
    queries = {item["name"]: item["content"]["query"] for item in logs_items(content)}
    assert 'extend region = tostring(customDimensions["cloud.region"])' in queries["region-summary"]
    assert "by region, slot" in queries["region-summary"]
    assert "bin(timestamp, {TimeRange:grain}), region" in queries["region-traffic-over-time"]
    assert all("extend region =" in q for q in queries.values() if q.startswith("let mcp = requests"))


def test_front_doors_view_reads_its_logs_from_the_workspace_only_with_front_door(content):
    items = {item["name"]: item["content"] for item in logs_items(content) if item["name"].startswith("front-door")}
    assert set(items) == {
        "front-door-requests",
        "front-door-latency",
        "front-door-origin-health",
        "front-door-waf-blocks",
    }
    for item in items.values():
        assert item["resourceType"] == "microsoft.operationalinsights/workspaces"
        assert item["crossComponentResources"] == [WORKSPACE_ID]
        assert item["query"].startswith("AzureDiagnostics")
    assert 'Category == "FrontDoorHealthProbeLog"' in items["front-door-origin-health"]["query"]
    assert 'action_s == "Block"' in items["front-door-waf-blocks"]["query"]
    without = build_workbook(PLAN_ID, WORKSPACE_ID)
    assert not [i for i in walk(without["items"]) if i["name"].startswith("front-door")]


def test_checker_rejects_a_front_door_column_azure_diagnostics_does_not_have(content):
    (query,) = [i["content"]["query"] for i in logs_items(content) if i["name"] == "front-door-waf-blocks"]
    query = substitute_parameters(query, TIME_RANGE_FORMS["relative"])
    results = kql_diagnostics(
        {"ok": query, "misspelt": query.replace("ruleName_s", "rulename_s")}, "microsoft.operationalinsights/workspaces"
    )
    assert not errors(results["ok"]) and errors(results["misspelt"])
