"""The fleet workbook: one Azure Monitor workbook (Notebook/1.0) that answers
"is traffic spreading across my instances?", "which tool is slow or failing?",
"who called which tool?", "whom do the rate limits refuse?" and "did autoscale
react?" at a glance.

``build_workbook(stamps, workspace_id)`` is pure: it returns the workbook
content as a dict; the monitoring component ``json.dumps`` it into the
Workbook resource's ``serializedData``.

Every panel is per region: a Region parameter (all regions by default, any
set of them) filters every Logs panel, the tables have a region column, and
each region's platform metrics (plan CPU, autoscale) get charts of their own,
since a metrics chart reads one resource. Telemetry rows carry the region as
``customDimensions["cloud.region"]``; App Service's logs by the site they came
from; Front Door's by the origin, which is named after its region. Telemetry queries name no resource,
so they run against the workbook's ``sourceId``: the monitoring component
must set ``sourceId`` to the Application Insights component. They use the
classic Application Insights table names (``requests``, ``customMetrics``,
...), which a workspace-based component still serves. The App Service log
panels query the Log Analytics workspace itself (``crossComponentResources``),
where the diagnostic settings (components/operations.py) write
``AppServiceHTTPLogs`` and ``AppServiceConsoleLogs``.

Telemetry contract (``app/telemetry/`` emits exactly this; the names
are ``app.contract``'s, which both import):

- every row below carries ``customDimensions["cloud.region"]``: the region of the
  instance that sent it. Exceptions are placed by their instance.
- one SERVER span per MCP message -> one ``requests`` row. Its
  ``customDimensions`` carry the OpenTelemetry MCP semantic-convention
  attributes ``mcp.method.name``, ``gen_ai.tool.name`` (tools/call),
  ``mcp.protocol.version``, ``jsonrpc.request.id`` and, on failure,
  ``mcp.error.type`` (JSON-RPC error code as text, ``tool_error`` for an
  ``isError`` tool result, or an exception class) and ``jsonrpc.error.code``
  (the JSON-RPC code): copies of the semconv ``error.type`` and
  ``rpc.response.status_code``, which the Azure Monitor exporter leaves out of
  customDimensions. ``success`` is false exactly on failure. Only MCP spans
  carry ``mcp.method.name``; the workbook filters on it.
- ``cloud_RoleName`` = ``service.name`` = ``"mcp-server-<slot>"`` where slot is
  ``MCP_SLOT_NAME`` (production / staging / local); ``cloud_RoleInstance`` =
  ``service.instance.id`` = ``WEBSITE_INSTANCE_ID``.
- histogram ``mcp.server.operation.duration`` (seconds) -> ``customMetrics``
  rows with ``valueCount``/``valueSum``/``valueMax`` and dimensions
  ``mcp.method.name``, ``gen_ai.tool.name`` and ``error.type`` (absent = ok).
- one audit record per ``tools/call`` with an Easy Auth caller, unsampled ->
  a ``customEvents`` row named ``mcp.tool_call``: ``user_AuthenticatedId`` =
  the caller's object id, ``customDimensions`` ``gen_ai.tool.name`` and
  ``mcp.outcome`` (``ok``, ``tool_error``, a JSON-RPC code or an exception
  class), ``customMeasurements["duration_ms"]``, ``operation_Id`` = trace id.
  Calls without a caller leave none.
- counter ``mcp.server.rate_limit.refusals`` (app/ratelimit/limiter.py) ->
  ``customMetrics`` rows with dimensions ``gen_ai.tool.name`` (``*`` for the
  every-tool limit), ``mcp.rate_limit.scope`` (``perCaller``, ``total`` or
  ``unavailable``) and ``mcp.rate_limit.caller``. The exporter sends a counter
  as deltas: one row per export interval and attribute set, whose
  ``value``/``valueSum`` is the refusals in that interval and whose
  ``valueCount`` is 1, so refusals are ``sum(valueSum)``, never a row count.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.contract import (
    ATTR_ERROR_TYPE,
    ATTR_METHOD,
    ATTR_RATE_LIMIT_CALLER,
    ATTR_RATE_LIMIT_SCOPE,
    ATTR_REGION,
    ATTR_TOOL,
    AUDIT_EVENT,
    DIM_ERROR_CODE,
    DIM_ERROR_TYPE,
    DIM_OUTCOME,
    MEASURE_DURATION_MS,
    METRIC_OPERATION_DURATION,
    METRIC_RATE_LIMIT_REFUSALS,
    OUTCOME_OK,
    SERVICE_NAME_PREFIX,
)

# --- workbook vocabulary -----------------------------------------------------
TIME_RANGE_PARAMETER = "TimeRange"
REGION_PARAMETER = "Region"
# What the Region parameter expands to with "All" selected (Learn, "Workbook dropdown parameters", Special casing
# All): a marker, so rows without a region still show, and the query does not grow with the number of regions.
ALL_REGIONS = "*"
_DEFAULT_RANGE_MS = 4 * 60 * 60 * 1000  # last 4 hours: long enough to see a scale-out and back
_APP_INSIGHTS = "microsoft.insights/components"
_PLAN_TYPE = "microsoft.web/serverfarms"
_AUTOSCALE_TYPE = "microsoft.insights/autoscalesettings"
_WORKSPACE_TYPE = "microsoft.operationalinsights/workspaces"

# Workbook item type ids (Notebook/1.0).
_MARKDOWN, _QUERY, _PARAMETERS, _METRICS, _GROUP = 1, 3, 9, 10, 12
_LOGS_QUERY = 0  # queryType: Logs (KQL)
_DROPDOWN, _TIME_RANGE_PICKER = 2, 4  # parameter types
# Metrics item aggregations.
_AGG_SUM, _AGG_MAX, _AGG_AVERAGE = 1, 3, 4

_TIME_FILTER = f"{{{TIME_RANGE_PARAMETER}}}"  # `| where timestamp {TimeRange}`
_GRAIN = f"{{{TIME_RANGE_PARAMETER}:grain}}"  # bin size the picker chooses for the range
# A multi-select dropdown expands to its quoted values ('westeurope','northeurope'), or to '*' for All.
_IN_REGIONS = f"""| where "{ALL_REGIONS}" in ({{{REGION_PARAMETER}}}) or region in ({{{REGION_PARAMETER}}})"""


@dataclass(frozen=True)
class StampCharts:
    """What the workbook reads of one region's stamp: its plan's metrics, its site's logs, its autoscale setting."""

    region: str
    plan_id: str
    site_id: str
    autoscale_setting_id: str | None = None


def _dim(attribute: str) -> str:
    return f'tostring(customDimensions["{attribute}"])'


# Every MCP panel starts from this: MCP spans in the time range, with the
# contract's dimensions projected to short column names. Counts use
# sum(itemCount) so they stay right if sampling is turned on.
MCP_REQUESTS = f"""let mcp = requests
| where timestamp {_TIME_FILTER}
| where isnotempty(customDimensions["{ATTR_METHOD}"])
| extend method = {_dim(ATTR_METHOD)}, tool = {_dim(ATTR_TOOL)}
| extend operation = iff(isempty(tool), method, strcat(method, " ", tool))
| extend slot = replace_string(cloud_RoleName, "{SERVICE_NAME_PREFIX}", "")
| extend region = {_dim(ATTR_REGION)}
{_IN_REGIONS}
| extend failed = not(tobool(success))
| extend error_type = {_dim(DIM_ERROR_TYPE)}, rpc_code = {_dim(DIM_ERROR_CODE)};
"""


def _over_mcp_requests(query: str) -> str:
    """``query`` over ``mcp``: the MCP requests in the time range, with method, tool, slot and outcome columns."""
    return MCP_REQUESTS + query


def _requests_over_time(split_by: str) -> str:
    """MCP requests per time bin, one series per value of the column ``split_by``."""
    return _over_mcp_requests(f"""mcp
| summarize requests = sum(itemCount) by bin(timestamp, {_GRAIN}), {split_by}
| order by timestamp asc""")


def _logs(name: str, title: str, query: str, visualization: str, **content: Any) -> dict[str, Any]:
    """A Logs (KQL) item bound to the time range parameter."""
    return {
        "type": _QUERY,
        "name": name,
        "content": {
            "version": "KqlItem/1.0",
            "title": title,
            "query": query,
            "size": 0,
            "queryType": _LOGS_QUERY,
            "resourceType": _APP_INSIGHTS,
            "timeContextFromParameter": TIME_RANGE_PARAMETER,
            "timeContext": {"durationMs": _DEFAULT_RANGE_MS},
            "visualization": visualization,
            "noDataMessage": "No MCP telemetry in this time range.",
            **content,
        },
    }


def _metrics(
    name: str, title: str, resource_type: str, resource_id: str, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """An Azure Monitor platform metrics item bound to the time range parameter."""
    return {
        "type": _METRICS,
        "name": name,
        "content": {
            # Deterministic, so re-running the program leaves the workbook unchanged.
            "chartId": f"workbook{uuid.uuid5(uuid.NAMESPACE_URL, 'mcpscale/workbook/' + name)}",
            "version": "MetricsItem/2.0",
            "title": title,
            "size": 0,
            "chartType": 2,  # line
            "resourceType": resource_type,
            "metricScope": 0,
            "resourceIds": [resource_id],
            "timeContextFromParameter": TIME_RANGE_PARAMETER,
            "timeContext": {"durationMs": _DEFAULT_RANGE_MS},
            "metrics": metrics,
            "gridFormatType": 1,
        },
    }


def _metric(resource_type: str, metric: str, aggregation: int, split_by: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespace": resource_type,
        "metric": f"{resource_type}--{metric}",
        "aggregation": aggregation,
    }
    if split_by:
        # The portal shows 10 segments by default; a plan can run up to 30 instances.
        spec.update(splitBy=split_by, splitBySortOrder=-1, splitByLimit=30)
    return spec


def _group(name: str, title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": _GROUP,
        "name": name,
        "content": {"version": "NotebookGroup/1.0", "groupType": "editable", "title": title, "items": items},
    }


def _half(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "customWidth": "50"}


def _parameters(regions: Sequence[str]) -> dict[str, Any]:
    hour = 60 * 60 * 1000
    return {
        "type": _PARAMETERS,
        "name": "parameters",
        "content": {
            "version": "KqlParameterItem/1.0",
            "style": "pills",
            "parameters": [
                {
                    "id": "6c1f4a52-5b1e-4a53-9d43-1e0f5f1c2a01",
                    "version": "KqlParameterItem/1.0",
                    "name": TIME_RANGE_PARAMETER,
                    "label": "Time range",
                    "type": _TIME_RANGE_PICKER,
                    "isRequired": True,
                    "value": {"durationMs": _DEFAULT_RANGE_MS},
                    "typeSettings": {
                        "selectableValues": [
                            {"durationMs": ms}
                            for ms in (15 * 60 * 1000, hour, 4 * hour, 12 * hour, 24 * hour, 72 * hour, 168 * hour)
                        ],
                        "allowCustom": True,
                    },
                },
                {
                    "id": "6c1f4a52-5b1e-4a53-9d43-1e0f5f1c2a02",
                    "version": "KqlParameterItem/1.0",
                    "name": REGION_PARAMETER,
                    "label": "Region",
                    "type": _DROPDOWN,
                    "isRequired": True,
                    "multiSelect": True,
                    "quote": "'",
                    "delimiter": ",",
                    "jsonData": json.dumps(list(regions)),
                    "typeSettings": {
                        "additionalResourceOptions": ["value::all"],
                        "selectAllValue": ALL_REGIONS,
                        "showDefault": False,
                    },
                    "defaultValue": "value::all",
                    "value": ["value::all"],
                },
            ],
        },
    }


# Rows that carry no region of their own (exceptions, performance counters) take their instance's, from the rows
# that do.
_INSTANCE_REGIONS = f"""let instance_region = union requests, customMetrics
| where timestamp {_TIME_FILTER}
| where isnotempty(customDimensions["{ATTR_REGION}"])
| summarize region = take_any({_dim(ATTR_REGION)}) by cloud_RoleInstance;
"""


def _load_distribution() -> dict[str, Any]:
    per_instance = _over_mcp_requests("""mcp
| summarize requests = sum(itemCount), failures = sumif(itemCount, failed), p95_ms = percentile(duration, 95)
    by region, slot, instance = cloud_RoleInstance
| join kind=inner (mcp | summarize slot_requests = sum(itemCount) by region, slot) on region, slot
| extend share_pct = round(100.0 * requests / slot_requests, 1)
| project region, slot, instance, requests, share_pct, failures, p95_ms
| order by region asc, slot asc, requests desc""")
    over_time = _requests_over_time("cloud_RoleInstance")
    return _group(
        "load-distribution",
        "Load distribution across instances",
        [
            _half(
                _logs(
                    "requests-per-instance",
                    "MCP requests per instance (share of its region's slot)",
                    per_instance,
                    "table",
                )
            ),
            _half(_logs("requests-per-instance-over-time", "MCP requests per instance", over_time, "timechart")),
        ],
    )


def _latency_and_rate() -> dict[str, Any]:
    by_operation = _over_mcp_requests("""let span_min = toscalar(mcp | summarize (max(timestamp) - min(timestamp)) / 1m);
let minutes = max_of(span_min, 1.0);
mcp
| summarize calls = sum(itemCount), failures = sumif(itemCount, failed),
    p50_ms = percentile(duration, 50), p95_ms = percentile(duration, 95), p99_ms = percentile(duration, 99)
    by region, method, tool
| extend calls_per_min = round(calls / minutes, 2)
| project region, method, tool, calls, calls_per_min, p50_ms, p95_ms, p99_ms, failures
| order by calls desc""")
    rate = _over_mcp_requests(f"""mcp
| summarize calls = sum(itemCount) by bin(timestamp, {_GRAIN}), operation
| order by timestamp asc""")
    latency = _over_mcp_requests(f"""mcp
| summarize p95_ms = percentile(duration, 95) by bin(timestamp, {_GRAIN}), operation
| order by timestamp asc""")
    return _group(
        "latency-and-rate",
        "Request rate and latency by MCP method and tool",
        [
            _logs(
                "latency-by-operation",
                "Calls, rate, latency p50 / p95 / p99 (ms) by region, method and tool",
                by_operation,
                "table",
            ),
            _half(_logs("rate-by-operation-over-time", "Calls per interval by method and tool", rate, "timechart")),
            _half(_logs("p95-by-operation-over-time", "p95 latency (ms) by method and tool", latency, "timechart")),
        ],
    )


def _failures() -> dict[str, Any]:
    rate = _over_mcp_requests("""mcp
| summarize calls = sum(itemCount), failures = sumif(itemCount, failed) by region, method, tool
| extend failure_pct = round(100.0 * failures / calls, 2)
| where failures > 0
| order by failures desc""")
    by_code = _over_mcp_requests("""mcp
| where failed
| summarize failures = sum(itemCount), last_seen = max(timestamp), example_operation_id = take_any(operation_Id)
    by region, method, tool, error_type, rpc_code
| order by failures desc""")
    over_time = _over_mcp_requests(f"""mcp
| where failed
| summarize failures = sum(itemCount) by bin(timestamp, {_GRAIN}), failure = strcat(operation, " / ", error_type)
| order by timestamp asc""")
    exceptions_by_type = f"""{_INSTANCE_REGIONS}exceptions
| where timestamp {_TIME_FILTER}
| where cloud_RoleName startswith "{SERVICE_NAME_PREFIX}"
| join kind=leftouter instance_region on cloud_RoleInstance
{_IN_REGIONS}
| summarize exceptions = sum(itemCount), last_seen = max(timestamp), example_message = take_any(outerMessage)
    by region, type, slot = replace_string(cloud_RoleName, "{SERVICE_NAME_PREFIX}", ""), cloud_RoleInstance
| order by exceptions desc"""
    return _group(
        "failures",
        "Failures and error codes by tool",
        [
            _half(_logs("failure-rate-by-tool", "Failure rate per region, method and tool", rate, "table")),
            _half(_logs("failures-by-error-code", "Failures by tool, error type and JSON-RPC code", by_code, "table")),
            _logs("failures-over-time", "Failures over time by tool and error", over_time, "timechart"),
            _logs("exceptions-by-type", "Unhandled exceptions in the server", exceptions_by_type, "table"),
        ],
    )


def _slots() -> dict[str, Any]:
    summary = _over_mcp_requests("""mcp
| summarize requests = sum(itemCount), failures = sumif(itemCount, failed), p95_ms = percentile(duration, 95),
    instances = dcount(cloud_RoleInstance), last_seen = max(timestamp)
    by slot
| extend failure_pct = round(100.0 * failures / requests, 2)
| project slot, requests, failure_pct, p95_ms, instances, last_seen""")
    over_time = _requests_over_time("slot")
    return _group(
        "slots",
        "Production vs staging",
        [
            _half(_logs("slot-summary", "Traffic, failures and latency per slot", summary, "table")),
            _half(_logs("slot-traffic-over-time", "MCP requests per slot over time", over_time, "timechart")),
        ],
    )


def _regions() -> dict[str, Any]:
    summary = _over_mcp_requests("""mcp
| summarize requests = sum(itemCount), failures = sumif(itemCount, failed), p95_ms = percentile(duration, 95),
    instances = dcount(cloud_RoleInstance), last_seen = max(timestamp)
    by region, slot
| extend failure_pct = round(100.0 * failures / requests, 2)
| project region, slot, requests, failure_pct, p95_ms, instances, last_seen
| order by region asc, slot asc""")
    latency = _over_mcp_requests(f"""mcp
| summarize p95_ms = percentile(duration, 95) by bin(timestamp, {_GRAIN}), region
| order by timestamp asc""")
    failures = _over_mcp_requests(f"""mcp
| where failed
| summarize failures = sum(itemCount) by bin(timestamp, {_GRAIN}), region
| order by timestamp asc""")
    return _group(
        "regions",
        "Regions side by side: traffic, failures and latency per region",
        [
            _logs("region-summary", "Traffic, failures, latency and instances per region and slot", summary, "table"),
            _half(
                _logs("region-traffic-over-time", "MCP requests per region", _requests_over_time("region"), "timechart")
            ),
            _half(_logs("region-p95-over-time", "p95 latency (ms) per region", latency, "timechart")),
            _logs("region-failures-over-time", "Failures per region", failures, "timechart"),
        ],
    )


# Front Door's logs land in AzureDiagnostics (components/front_door.py), one Category per log, columns named as
# Front Door writes them with the table's type suffix (_s: text), as in Learn's example queries for the table
# ("Queries for the AzureDiagnostics table", microsoft.cdn: httpStatusCode_s, originName_s, action_s, ruleName_s).
# An origin is named after its region, so the Region parameter filters what went to an origin; a WAF block never
# reaches one.
def _front_door_log(category: str, query: str, by_origin: bool = True) -> str:
    region = f"| extend region = originName_s\n{_IN_REGIONS}\n" if by_origin else ""
    return f"""AzureDiagnostics
| where TimeGenerated {_TIME_FILTER}
| where Category == "{category}"
{region}{query}"""


def _front_door(workspace_id: str) -> dict[str, Any]:
    requests = _front_door_log(
        "FrontDoorAccessLog",
        f"""| summarize requests = count() by bin(TimeGenerated, {_GRAIN}),
    status = strcat(substring(httpStatusCode_s, 0, 1), "xx")
| order by TimeGenerated asc""",
    )
    # Learn's example queries do not name the suffix timeTaken (seconds, as text) lands with: either is read.
    latency = _front_door_log(
        "FrontDoorAccessLog",
        f"""| extend time_taken_s = coalesce(todouble(column_ifexists("timeTaken_s", "")),
    todouble(column_ifexists("timeTaken_d", real(null))))
| summarize p95_ms = percentile(1000.0 * time_taken_s, 95) by bin(TimeGenerated, {_GRAIN}), origin = originName_s
| order by TimeGenerated asc""",
    )
    health = _front_door_log(
        "FrontDoorHealthProbeLog",
        f"""| summarize failed_probes = count() by bin(TimeGenerated, {_GRAIN}), origin = originName_s,
    status = httpStatusCode_s
| order by TimeGenerated asc""",
    )
    blocks = _front_door_log(
        "FrontDoorWebApplicationFirewallLog",
        """| where action_s == "Block"
| summarize blocks = count(), last_seen = max(TimeGenerated), example_uri = take_any(requestUri_s)
    by rule = ruleName_s, client = clientIP_s
| order by blocks desc""",
        by_origin=False,
    )

    def logs(name: str, title: str, query: str, visualization: str) -> dict[str, Any]:
        item = _workspace_logs(workspace_id, name, title, query, visualization)
        item["content"]["noDataMessage"] = "No Front Door logs in this time range."
        return item

    return _group(
        "front-door",
        "Front Door: requests, origin health, latency and WAF blocks (its logs)",
        [
            _half(logs("front-door-requests", "Requests sent to the regions by HTTP status", requests, "timechart")),
            _half(logs("front-door-latency", "p95 time taken (ms) per origin (region)", latency, "timechart")),
            _half(logs("front-door-origin-health", "Failed health probes per origin (region)", health, "timechart")),
            _half(logs("front-door-waf-blocks", "WAF blocks by rule and client (every region)", blocks, "table")),
        ],
    )


def _tool_metrics() -> dict[str, Any]:
    outcome = f"""customMetrics
| where timestamp {_TIME_FILTER}
| where name == "{METRIC_OPERATION_DURATION}"
| extend method = {_dim(ATTR_METHOD)}, tool = {_dim(ATTR_TOOL)}, error_type = {_dim(ATTR_ERROR_TYPE)}
| extend region = {_dim(ATTR_REGION)}
{_IN_REGIONS}
| where method == "tools/call"
| extend outcome = iff(isempty(error_type), "ok", error_type)
| extend slot = replace_string(cloud_RoleName, "{SERVICE_NAME_PREFIX}", "")
| summarize calls = sum(valueCount), total_s = sum(valueSum), max_s = max(valueMax) by region, slot, tool, outcome
| extend avg_ms = round(1000.0 * total_s / calls, 1), max_ms = round(1000.0 * max_s, 1)
| project region, slot, tool, outcome, calls, avg_ms, max_ms
| order by calls desc"""
    return _logs(
        "tool-calls-by-outcome",
        f"Tool calls by tool and outcome (metric {METRIC_OPERATION_DURATION}, every call, unsampled)",
        outcome,
        "table",
    )


def _calls_by_caller() -> dict[str, Any]:
    by_caller = f"""customEvents
| where timestamp {_TIME_FILTER}
| where name == "{AUDIT_EVENT}"
| extend caller = user_AuthenticatedId, tool = {_dim(ATTR_TOOL)}, outcome = {_dim(DIM_OUTCOME)}
| extend region = {_dim(ATTR_REGION)}
{_IN_REGIONS}
| extend duration_ms = todouble(customMeasurements["{MEASURE_DURATION_MS}"])
| summarize calls = sum(itemCount), failures = sumif(itemCount, outcome != "{OUTCOME_OK}"),
    failure_outcomes = make_set_if(outcome, outcome != "{OUTCOME_OK}"), p95_ms = percentile(duration_ms, 95),
    last_seen = max(timestamp), example_operation_id = take_any(operation_Id), regions = make_set(region)
    by caller, tool
| project caller, tool, calls, failures, failure_outcomes, p95_ms, regions, last_seen, example_operation_id
| order by calls desc"""
    return _logs(
        "calls-by-caller-and-tool",
        "Calls by caller and tool (audit: every tool call with a signed-in caller, unsampled)",
        by_caller,
        "table",
        noDataMessage="No audited tool calls in this time range (only calls with an Easy Auth caller are audited).",
    )


def _rate_limit_refusals() -> dict[str, Any]:
    refusals = f"""customMetrics
| where timestamp {_TIME_FILTER}
| where name == "{METRIC_RATE_LIMIT_REFUSALS}"
| extend tool = {_dim(ATTR_TOOL)}, scope = {_dim(ATTR_RATE_LIMIT_SCOPE)}, caller = {_dim(ATTR_RATE_LIMIT_CALLER)}
| extend region = {_dim(ATTR_REGION)}
{_IN_REGIONS}
"""
    by_caller = f"""{refusals}| summarize refusals = sum(valueSum), first_seen = min(timestamp), last_seen = max(timestamp)
    by tool, scope, caller, region
| order by refusals desc"""
    over_time = f"""{refusals}| summarize refusals = sum(valueSum) by bin(timestamp, {_GRAIN}), limit = strcat(tool, " ", scope)
| order by timestamp asc"""
    no_data = "No rate-limit refusals in this time range (or no rateLimits set)."
    return _group(
        "rate-limits",
        "Rate limits",
        [
            _half(
                _logs(
                    "refusals-by-tool-and-caller",
                    f"Refused calls by tool, limit, caller and region (metric {METRIC_RATE_LIMIT_REFUSALS})",
                    by_caller,
                    "table",
                    noDataMessage=no_data,
                )
            ),
            _half(
                _logs(
                    "refusals-over-time",
                    "Refused calls over time by tool and limit",
                    over_time,
                    "timechart",
                    noDataMessage=no_data,
                )
            ),
        ],
    )


def _site_region(stamps: Sequence[StampCharts]) -> str:
    """A KQL expression: the region of the site (or its slot) whose log row this is, from the row's ``_ResourceId``.

    The site's id, or below it (``/slots/...``): a bare prefix would give ``sites/mcp`` the rows of
    ``sites/mcp-northeurope``. ``=~`` and ``startswith`` ignore case, as resource ids do.
    """
    cases = ", ".join(
        f'_ResourceId =~ "{stamp.site_id}" or _ResourceId startswith "{stamp.site_id}/", "{stamp.region}"'
        for stamp in stamps
    )
    return f'case({cases}, "")'


# Every App Service log panel starts from one of its tables in the time
# range, with the slot (production, or the slot's name) and the region taken
# from the resource id the diagnostic setting wrote.
def _app_service_log(stamps: Sequence[StampCharts], table: str, query: str) -> str:
    return f"""{table}
| where TimeGenerated {_TIME_FILTER}
| extend slot = iff(_ResourceId has "/slots/", extract(@"/slots/([^/]+)", 1, _ResourceId), "production")
| extend region = {_site_region(stamps)}
{_IN_REGIONS}
{query}"""


def _workspace_logs(workspace_id: str, name: str, title: str, query: str, visualization: str) -> dict[str, Any]:
    """A Logs item over the App Service tables in the Log Analytics workspace."""
    return _logs(
        name,
        title,
        query,
        visualization,
        resourceType=_WORKSPACE_TYPE,
        crossComponentResources=[workspace_id],
        noDataMessage="No App Service logs in this time range.",
    )


def _app_service(stamps: Sequence[StampCharts], workspace_id: str) -> dict[str, Any]:
    status = _app_service_log(
        stamps,
        "AppServiceHTTPLogs",
        f"""| summarize requests = count() by bin(TimeGenerated, {_GRAIN}), status = strcat(tostring(ScStatus / 100), "xx")
| order by TimeGenerated asc""",
    )
    server_errors = _app_service_log(
        stamps,
        "AppServiceHTTPLogs",
        """| where ScStatus >= 500
| summarize errors = count(), last_seen = max(TimeGenerated), p95_ms = percentile(TimeTaken, 95)
    by region, slot, method = CsMethod, path = CsUriStem, status = ScStatus
| order by errors desc""",
    )
    # Oryx build errors, Python tracebacks and a server that exits at start-up
    # reach only the console; the app's own telemetry never starts then.
    startup = _app_service_log(
        stamps,
        "AppServiceConsoleLogs",
        """| where Level =~ "Error"
    or ResultDescription has_any ("Traceback", "ModuleNotFoundError", "ImportError", "exited with code", "Error:")
| summarize lines = count(), first_seen = min(TimeGenerated), last_seen = max(TimeGenerated),
    example = take_any(ResultDescription)
    by region, slot, instance = Host
| order by last_seen desc""",
    )
    return _group(
        "app-service",
        "App Service: HTTP status and start-up failures (platform logs)",
        [
            _half(
                _workspace_logs(workspace_id, "http-status-over-time", "Responses by HTTP status", status, "timechart")
            ),
            _half(
                _workspace_logs(
                    workspace_id,
                    "http-5xx-by-path",
                    "HTTP 5xx by region, slot, method and path",
                    server_errors,
                    "table",
                )
            ),
            _workspace_logs(
                workspace_id,
                "startup-failures",
                "Start-up failures in the console (build errors, tracebacks, exits)",
                startup,
                "table",
            ),
        ],
    )


def _capacity(stamps: Sequence[StampCharts]) -> dict[str, Any]:
    instances = f"""{_INSTANCE_REGIONS}union requests, customMetrics, performanceCounters
| where timestamp {_TIME_FILTER}
| where cloud_RoleName startswith "{SERVICE_NAME_PREFIX}"
| join kind=leftouter instance_region on cloud_RoleInstance
{_IN_REGIONS}
| extend slot = replace_string(cloud_RoleName, "{SERVICE_NAME_PREFIX}", "")
| summarize instances = dcount(cloud_RoleInstance) by bin(timestamp, {_GRAIN}), region_slot = strcat(region, " ", slot)
| order by timestamp asc"""
    items = [_logs("instances-over-time", "Instances reporting telemetry, per region and slot", instances, "timechart")]
    # A metrics chart reads one resource's metrics: each region's plan and autoscale setting get their own.
    for stamp in stamps:
        region = stamp.region
        items += [
            _half(
                _metrics(
                    f"plan-cpu-per-instance-{region}",
                    f"{region}: plan CPU % per instance (one line per instance: new lines = scale-out)",
                    _PLAN_TYPE,
                    stamp.plan_id,
                    [_metric(_PLAN_TYPE, "CpuPercentage", _AGG_AVERAGE, split_by="Instance")],
                )
            ),
            _half(
                _metrics(
                    f"plan-cpu-{region}",
                    f"{region}: plan CPU % (average: what autoscale acts on; max: the hottest instance)",
                    _PLAN_TYPE,
                    stamp.plan_id,
                    [
                        _metric(_PLAN_TYPE, "CpuPercentage", _AGG_AVERAGE),
                        _metric(_PLAN_TYPE, "CpuPercentage", _AGG_MAX),
                    ],
                )
            ),
        ]
        if stamp.autoscale_setting_id:
            items.append(
                _metrics(
                    f"autoscale-capacity-{region}",
                    f"{region}: autoscale observed capacity (instances) and scale actions",
                    _AUTOSCALE_TYPE,
                    stamp.autoscale_setting_id,
                    [
                        _metric(_AUTOSCALE_TYPE, "ObservedCapacity", _AGG_AVERAGE),
                        _metric(_AUTOSCALE_TYPE, "ScaleActionsInitiated", _AGG_SUM),
                    ],
                )
            )
    return _group("capacity", "CPU and instance count (autoscale), per region", items)


def _require_resource_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.lower().startswith("/subscriptions/"):
        raise ValueError(f"{name} must be an Azure resource id (/subscriptions/...), got {value!r}")


def _require_stamps(stamps: Sequence[StampCharts]) -> None:
    if not stamps:
        raise ValueError("stamps must name at least one region's stamp")
    regions = [stamp.region for stamp in stamps]
    if len(set(regions)) != len(regions):
        raise ValueError(f"stamps must be one per region, got regions {regions}")
    for stamp in stamps:
        # Regions become item names and KQL string literals.
        if not stamp.region.isalnum():
            raise ValueError(f"stamp region must be an Azure region name (letters and digits), got {stamp.region!r}")
        _require_resource_id(f"{stamp.region} plan_id", stamp.plan_id)
        _require_resource_id(f"{stamp.region} site_id", stamp.site_id)
        if stamp.autoscale_setting_id is not None:
            _require_resource_id(f"{stamp.region} autoscale_setting_id", stamp.autoscale_setting_id)


def build_workbook(stamps: Sequence[StampCharts], workspace_id: str, front_door: bool = False) -> dict[str, Any]:
    """Workbook content (Notebook/1.0) for the fleet's regions, one ``StampCharts`` each, the primary first.

    Each stamp's ``plan_id`` feeds its region's CPU charts, and its
    ``autoscale_setting_id``, when given, its observed capacity (an App Service
    plan has no instance-count metric of its own; instance count over time also
    comes from the instances reporting telemetry). ``workspace_id`` is the Log
    Analytics workspace holding the App Service logs. With ``front_door`` a
    group reads Front Door's own logs from the workspace.
    """
    _require_stamps(stamps)
    _require_resource_id("workspace_id", workspace_id)
    return {
        "version": "Notebook/1.0",
        "items": [
            {
                "type": _MARKDOWN,
                "name": "title",
                "content": {
                    "json": "## MCP fleet\n"
                    "Is traffic spreading across instances? Which tool is slow or failing? "
                    "Who called which tool? Whom do the rate limits refuse? Did autoscale react? "
                    "Every panel follows the time range and the regions chosen below."
                },
            },
            _parameters([stamp.region for stamp in stamps]),
            _load_distribution(),
            _latency_and_rate(),
            _failures(),
            _tool_metrics(),
            _calls_by_caller(),
            _rate_limit_refusals(),
            _slots(),
            _regions(),
            *([_front_door(workspace_id)] if front_door else []),
            _app_service(stamps, workspace_id),
            _capacity(stamps),
        ],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }
