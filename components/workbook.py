"""The fleet workbook: one Azure Monitor workbook (Notebook/1.0) that answers
"is traffic spreading across my instances?", "which tool is slow or failing?"
and "did autoscale react?" at a glance.

``build_workbook(plan_id)`` is pure: it returns the workbook content as a dict;
the monitoring component ``json.dumps`` it into the Workbook resource's
``serializedData``. Logs queries name no resource, so they run against the
workbook's ``sourceId``: the monitoring component must set ``sourceId`` to the
Application Insights component. Queries use the classic Application Insights
table names (``requests``, ``customMetrics``, ...), which a workspace-based
component still serves.

Telemetry contract (``app/telemetry.py`` emits exactly this; ``components``
never imports ``app``, so the names are repeated there and a test in
``tests/app/test_telemetry.py`` checks both sides agree):

- one SERVER span per MCP message -> one ``requests`` row. Its
  ``customDimensions`` carry the OpenTelemetry MCP semantic-convention
  attributes ``mcp.method.name``, ``gen_ai.tool.name`` (tools/call),
  ``mcp.protocol.version``, ``jsonrpc.request.id`` and, on failure,
  ``error.type`` (JSON-RPC error code as text, or ``tool_error`` for an
  ``isError`` tool result) and ``rpc.response.status_code`` (the JSON-RPC
  code). ``success`` is false exactly when ``error.type`` is set. Only MCP
  spans carry ``mcp.method.name``; the workbook filters on it.
- ``cloud_RoleName`` = ``service.name`` = ``"mcp-server-<slot>"`` where slot is
  ``MCP_SLOT_NAME`` (production / staging / local); ``cloud_RoleInstance`` =
  ``service.instance.id`` = ``WEBSITE_INSTANCE_ID``.
- histogram ``mcp.server.operation.duration`` (seconds) -> ``customMetrics``
  rows with ``valueCount``/``valueSum``/``valueMax`` and the same
  ``mcp.method.name``, ``gen_ai.tool.name``, ``error.type`` dimensions.
"""

from __future__ import annotations

from typing import Any

# --- telemetry contract (mirrored in app/telemetry.py) ----------------------
ATTR_METHOD = "mcp.method.name"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROTOCOL_VERSION = "mcp.protocol.version"
ATTR_REQUEST_ID = "jsonrpc.request.id"
ATTR_ERROR_TYPE = "error.type"
ATTR_RPC_STATUS_CODE = "rpc.response.status_code"
SERVICE_NAME_PREFIX = "mcp-server-"
METRIC_OPERATION_DURATION = "mcp.server.operation.duration"

# --- workbook vocabulary -----------------------------------------------------
TIME_RANGE_PARAMETER = "TimeRange"
_DEFAULT_RANGE_MS = 4 * 60 * 60 * 1000  # last 4 hours: long enough to see a scale-out and back
_APP_INSIGHTS = "microsoft.insights/components"
_PLAN_TYPE = "microsoft.web/serverfarms"
_AUTOSCALE_TYPE = "microsoft.insights/autoscalesettings"

# Workbook item type ids (Notebook/1.0).
_MARKDOWN, _QUERY, _PARAMETERS, _METRICS, _GROUP = 1, 3, 9, 10, 12
_LOGS_QUERY = 0  # queryType: Logs (KQL)
_TIME_RANGE_PICKER = 4  # parameter type
# Metrics item aggregations.
_AGG_SUM, _AGG_MAX, _AGG_AVERAGE = 1, 3, 4

_TIME_FILTER = f"{{{TIME_RANGE_PARAMETER}}}"  # `| where timestamp {TimeRange}`
_GRAIN = f"{{{TIME_RANGE_PARAMETER}:grain}}"  # bin size the picker chooses for the range


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
| extend failed = not(tobool(success))
| extend error_type = {_dim(ATTR_ERROR_TYPE)}, rpc_code = {_dim(ATTR_RPC_STATUS_CODE)};
"""


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


def _metrics(name: str, title: str, resource_type: str, resource_id: str, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """An Azure Monitor platform metrics item bound to the time range parameter."""
    return {
        "type": _METRICS,
        "name": name,
        "content": {
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
    return {
        "namespace": resource_type,
        "metric": f"{resource_type}--{metric}",
        "aggregation": aggregation,
        "splitBy": split_by,
    }


def _group(name: str, title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": _GROUP,
        "name": name,
        "content": {"version": "NotebookGroup/1.0", "groupType": "editable", "title": title, "items": items},
    }


def _half(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "customWidth": "50"}


def _time_range_parameter() -> dict[str, Any]:
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
                }
            ],
        },
    }


def _load_distribution() -> dict[str, Any]:
    per_instance = MCP_REQUESTS + """mcp
| summarize requests = sum(itemCount), failures = sumif(itemCount, failed), p95_ms = percentile(duration, 95)
    by slot, instance = cloud_RoleInstance
| join kind=inner (mcp | summarize slot_requests = sum(itemCount) by slot) on slot
| extend share_pct = round(100.0 * requests / slot_requests, 1)
| project slot, instance, requests, share_pct, failures, p95_ms
| order by slot asc, requests desc"""
    over_time = MCP_REQUESTS + f"""mcp
| summarize requests = sum(itemCount) by bin(timestamp, {_GRAIN}), cloud_RoleInstance
| order by timestamp asc"""
    return _group(
        "load-distribution",
        "Load distribution across instances",
        [
            _half(_logs("requests-per-instance", "MCP requests per instance (share within slot)", per_instance, "table")),
            _half(_logs("requests-per-instance-over-time", "MCP requests per instance over time", over_time, "timechart")),
        ],
    )


def build_workbook(plan_id: str) -> dict[str, Any]:
    """Workbook content (Notebook/1.0) for the fleet on App Service plan ``plan_id``."""
    if not plan_id or not plan_id.startswith("/subscriptions/"):
        raise ValueError(f"plan_id must be an Azure resource id (/subscriptions/...), got {plan_id!r}")
    return {
        "version": "Notebook/1.0",
        "items": [
            {
                "type": _MARKDOWN,
                "name": "title",
                "content": {
                    "json": "## MCP fleet\n"
                    "Traffic spread across instances, latency and failures per MCP method and tool, "
                    "production vs staging, and the plan's CPU per instance (autoscale)."
                },
            },
            _time_range_parameter(),
            _load_distribution(),
        ],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }
