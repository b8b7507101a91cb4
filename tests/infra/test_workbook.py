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
from components.workbook import StampCharts, build_workbook
from tests.infra.kusto.checker import kql_diagnostics

SCHEMA_PATH = Path(__file__).with_name("schemas") / "workbook.schema.json"
GROUP = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
PLAN_ID = f"{GROUP}/providers/Microsoft.Web/serverfarms/plan-mcp"
SITE_ID = f"{GROUP}/providers/Microsoft.Web/sites/mcp-site"
SECOND_PLAN_ID = f"{GROUP}/providers/Microsoft.Web/serverfarms/plan-mcp-northeurope"
SECOND_SITE_ID = f"{GROUP}/providers/Microsoft.Web/sites/mcp-site-northeurope"
WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.OperationalInsights/workspaces/logs-mcp"
)
AUTOSCALE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.Insights/autoscalesettings/autoscale-mcp"
)

# A two-region fleet, the primary with autoscale.
STAMPS = [
    StampCharts("westeurope", PLAN_ID, SITE_ID, AUTOSCALE_ID),
    StampCharts("northeurope", SECOND_PLAN_ID, SECOND_SITE_ID),
]

# What a workbook substitutes for the time range parameter before it runs a
# query: a relative range from the picker, or a custom absolute range.
TIME_RANGE_FORMS = {
    "relative": "> ago(4h)",
    "absolute": "between (datetime(2026-07-28T00:00:00Z) .. datetime(2026-07-28T04:00:00Z))",
}
# And for the Region parameter (a multi-select dropdown, quoted with ', delimited by ,): All, or a selection.
REGION_FORMS = {"relative": "'*'", "absolute": "'westeurope','northeurope'"}
GRAIN = "5m"
PARAMETER_REFERENCE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]+)?\}")


def substitute_parameters(query: str, time_range: str, regions: str = "'*'") -> str:
    """The query as the workbook runs it; fails on any parameter the workbook does not define."""
    text = query.replace("{TimeRange:grain}", GRAIN).replace("{TimeRange}", time_range).replace("{Region}", regions)
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
    return json.loads(json.dumps(build_workbook(STAMPS, WORKSPACE_ID, front_door=True)))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.fixture(scope="module")
def kusto_results(content) -> dict[str, list[dict]]:
    """Diagnostics for every Logs query under every time range form (each with a form of the Region parameter), one
    checker run per resource type.

    Each query is checked against the tables of the resource it runs on (its item's resourceType).
    """
    results: dict[str, list[dict]] = {}
    for resource_type in {item["content"]["resourceType"] for item in logs_items(content)}:
        queries = {
            f"{form}:{item['name']}": substitute_parameters(item["content"]["query"], time_range, REGION_FORMS[form])
            for form, time_range in TIME_RANGE_FORMS.items()
            for item in logs_items(content)
            if item["content"]["resourceType"] == resource_type
        }
        results.update(kql_diagnostics(queries, resource_type))
    return results


# --- Notebook/1.0 schema -----------------------------------------------------


@pytest.mark.parametrize("stamps", [STAMPS[:1], STAMPS], ids=["one region", "two regions"])
def test_serialized_workbook_validates_against_the_notebook_schema(validator, stamps):
    serialized = json.dumps(build_workbook(stamps, WORKSPACE_ID))
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


def test_ids_must_be_resource_ids_and_regions_one_stamp_each():
    (primary,) = STAMPS[:1]
    with pytest.raises(ValueError, match="westeurope plan_id must be an Azure resource id.*'plan-mcp'"):
        build_workbook([StampCharts("westeurope", "plan-mcp", SITE_ID)], WORKSPACE_ID)
    with pytest.raises(ValueError, match="westeurope site_id must be an Azure resource id"):
        build_workbook([StampCharts("westeurope", PLAN_ID, "mcp-site")], WORKSPACE_ID)
    with pytest.raises(ValueError, match="workspace_id must be an Azure resource id"):
        build_workbook(STAMPS, "logs-mcp")
    with pytest.raises(ValueError, match="westeurope autoscale_setting_id must be an Azure resource id"):
        build_workbook([StampCharts("westeurope", PLAN_ID, SITE_ID, "")], WORKSPACE_ID)
    with pytest.raises(ValueError, match="at least one region"):
        build_workbook([], WORKSPACE_ID)
    with pytest.raises(ValueError, match=r"one per region, got regions \['westeurope', 'westeurope'\]"):
        build_workbook([primary, primary], WORKSPACE_ID)
    with pytest.raises(ValueError, match="Azure region name.*'west europe'"):
        build_workbook([StampCharts("west europe", PLAN_ID, SITE_ID)], WORKSPACE_ID)


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
    assert re.search(r"by region, method, tool\b", query)
    assert "calls_per_min" in query
    for name in ("rate-by-operation-over-time", "p95-by-operation-over-time"):
        panel = item(content, name)["content"]
        assert panel["visualization"] == "timechart" and "operation" in panel["query"]


def test_failures_by_tool_and_error_code(content):
    query = item(content, "failures-by-error-code")["content"]["query"]
    assert re.search(r"by region, method, tool, error_type, rpc_code", query)
    assert 'customDimensions["mcp.error.type"]' in query and 'customDimensions["jsonrpc.error.code"]' in query
    assert "failure_pct" in item(content, "failure-rate-by-tool")["content"]["query"]


def test_tool_call_metric_by_tool_and_outcome(content):
    query = item(content, "tool-calls-by-outcome")["content"]["query"]
    assert f'name == "{workbook.METRIC_OPERATION_DURATION}"' in query
    assert re.search(r"by region, slot, tool, outcome", query)


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
    monkeypatch.setenv("MCP_REGION", "westeurope")
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
            "cloud.region": "westeurope",
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


def test_each_regions_plan_cpu_per_instance_from_azure_monitor_metrics(content):
    for region, plan_id in (("westeurope", PLAN_ID), ("northeurope", SECOND_PLAN_ID)):
        panel = item(content, f"plan-cpu-per-instance-{region}")["content"]
        assert panel["resourceIds"] == [plan_id] and panel["title"].startswith(f"{region}: ")
        assert panel["resourceType"] == "microsoft.web/serverfarms"
        (metric,) = panel["metrics"]
        assert metric["metric"] == "microsoft.web/serverfarms--CpuPercentage" and metric["splitBy"] == "Instance"
        assert item(content, f"plan-cpu-{region}")["content"]["resourceIds"] == [plan_id]
    query = item(content, "instances-over-time")["content"]["query"]
    assert "dcount(cloud_RoleInstance)" in query and "region_slot = strcat(region" in query


def test_autoscale_capacity_panel_only_for_a_region_with_an_autoscale_setting(content):
    assert not [i for i in walk(content["items"]) if i["name"] == "autoscale-capacity-northeurope"]
    panel = item(content, "autoscale-capacity-westeurope")["content"]
    assert panel["resourceIds"] == [AUTOSCALE_ID]
    assert [m["metric"] for m in panel["metrics"]] == [
        "microsoft.insights/autoscalesettings--ObservedCapacity",
        "microsoft.insights/autoscalesettings--ScaleActionsInitiated",
    ]


def test_build_is_pure_and_deterministic():
    assert json.dumps(build_workbook(STAMPS, WORKSPACE_ID)) == json.dumps(build_workbook(STAMPS, WORKSPACE_ID))


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
    assert re.search(r"by region, slot, method = CsMethod, path = CsUriStem, status = ScStatus", errors["query"])


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


# --- regions --------------------------------------------------------------------------------------------------------

REGION_FILTER = """| where "*" in ({Region}) or region in ({Region})"""
# Blocked at the edge, before any origin: no region to filter by.
NOT_PER_REGION = {"front-door-waf-blocks"}


def test_the_region_parameter_offers_every_region_and_defaults_to_all(content):
    parameters = [p for item in walk(content["items"]) if item["type"] == 9 for p in item["content"]["parameters"]]
    (region,) = [p for p in parameters if p["name"] == workbook.REGION_PARAMETER]
    assert region["type"] == 2 and region["multiSelect"] and region["isRequired"]
    assert (region["quote"], region["delimiter"]) == ("'", ",")  # what REGION_FORMS substitutes
    assert json.loads(region["jsonData"]) == ["westeurope", "northeurope"]
    assert region["defaultValue"] == "value::all" and region["value"] == ["value::all"]
    assert region["typeSettings"]["additionalResourceOptions"] == ["value::all"]
    assert region["typeSettings"]["selectAllValue"] == workbook.ALL_REGIONS == "*"


def test_every_logs_panel_follows_the_region_parameter(content):
    per_region = [i for i in logs_items(content) if i["name"] not in NOT_PER_REGION]
    assert len(per_region) == len(logs_items(content)) - len(NOT_PER_REGION)
    for panel in per_region:
        query = panel["content"]["query"]
        assert REGION_FILTER in query, panel["name"]
        # The filter follows the column it reads.
        assert query.index("region =") < query.index(REGION_FILTER), panel["name"]
    for name in NOT_PER_REGION:
        assert "{Region}" not in item(content, name)["content"]["query"]


def test_every_table_but_the_slot_summary_has_a_region_column(content):
    tables = [i for i in logs_items(content) if i["content"]["visualization"] == "table"]
    for panel in tables:
        if panel["name"] in {"slot-summary", *NOT_PER_REGION}:
            continue
        last_summarize = panel["content"]["query"].rsplit("| summarize", 1)[1]
        assert re.search(r"\bregions? = |by (.*, )?region\b", last_summarize), panel["name"]


def test_rows_get_their_region_from_where_each_table_keeps_it(content):
    queries = {i["name"]: i["content"]["query"] for i in logs_items(content)}
    telemetry = 'region = tostring(customDimensions["cloud.region"])'
    for name in ("region-summary", "tool-calls-by-outcome", "calls-by-caller-and-tool", "refusals-by-tool-and-caller"):
        assert telemetry in queries[name], name
    # Exceptions and performance counters carry none: their instance's, from the rows that do.
    for name in ("exceptions-by-type", "instances-over-time"):
        assert "join kind=leftouter instance_region on cloud_RoleInstance" in queries[name], name
    # App Service logs: the site (or its slot) the row came from; mcp-site is not a prefix of mcp-site-northeurope.
    site_region = (
        f'extend region = case(_ResourceId =~ "{SITE_ID}" or _ResourceId startswith "{SITE_ID}/", "westeurope", '
        f'_ResourceId =~ "{SECOND_SITE_ID}" or _ResourceId startswith "{SECOND_SITE_ID}/", "northeurope", "")'
    )
    for name in ("http-status-over-time", "http-5xx-by-path", "startup-failures"):
        assert site_region in queries[name], name
    # Front Door's: the origin, named after its region (components/front_door.py).
    for name in ("front-door-requests", "front-door-latency", "front-door-origin-health"):
        assert "extend region = originName_s" in queries[name], name


def test_the_regions_group_sets_regions_side_by_side(content):
    queries = {i["name"]: i["content"]["query"] for i in logs_items(content)}
    assert "by region, slot" in queries["region-summary"]
    assert "bin(timestamp, {TimeRange:grain}), region" in queries["region-traffic-over-time"]


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
    without = build_workbook(STAMPS, WORKSPACE_ID)
    assert not [i for i in walk(without["items"]) if i["name"].startswith("front-door")]


def test_checker_rejects_a_front_door_column_azure_diagnostics_does_not_have(content):
    (query,) = [i["content"]["query"] for i in logs_items(content) if i["name"] == "front-door-waf-blocks"]
    query = substitute_parameters(query, TIME_RANGE_FORMS["relative"])
    results = kql_diagnostics(
        {"ok": query, "misspelt": query.replace("ruleName_s", "rulename_s")}, "microsoft.operationalinsights/workspaces"
    )
    assert not errors(results["ok"]) and errors(results["misspelt"])
