"""Check KQL with Microsoft's Kusto language service against the Application Insights tables.

The parser is the npm package ``@kusto/language-service-next`` (the engine of
the Azure portal's query editor), run under Node 22 by ``check_kql.js``; both
are installed by ``tests/npm_tools.py`` on first use. One Node process checks
a whole batch of queries, since loading the service dominates the cost.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.npm_tools import node22, npm_install, package_dir

KUSTO_PACKAGE = "@kusto/language-service-next"
KUSTO_SPEC = f"{KUSTO_PACKAGE}@12.4.1"
CHECK_SCRIPT = Path(__file__).with_name("check_kql.js")

# Column names and types of the classic (Application Insights resource scoped)
# tables, as listed in Microsoft's "Table schemas" mapping, section
# "Workspace-based resource changes" of
# https://learn.microsoft.com/azure/azure-monitor/app/convert-classic-resource#table-schemas
# (source: MicrosoftDocs/azure-monitor-docs, articles/azure-monitor/app/convert-classic-resource.md).
_COMMON = [
    ("timestamp", "datetime"),
    ("appId", "string"),
    ("application_Version", "string"),
    ("appName", "string"),
    ("client_Browser", "string"),
    ("client_City", "string"),
    ("client_CountryOrRegion", "string"),
    ("client_IP", "string"),
    ("client_Model", "string"),
    ("client_OS", "string"),
    ("client_StateOrProvince", "string"),
    ("client_Type", "string"),
    ("cloud_RoleInstance", "string"),
    ("cloud_RoleName", "string"),
    ("customDimensions", "dynamic"),
    ("iKey", "string"),
    ("itemId", "string"),
    ("itemType", "string"),
    ("operation_Id", "string"),
    ("operation_Name", "string"),
    ("operation_ParentId", "string"),
    ("operation_SyntheticSource", "string"),
    ("sdkVersion", "string"),
    ("session_Id", "string"),
    ("user_AccountId", "string"),
    ("user_AuthenticatedId", "string"),
    ("user_Id", "string"),
]
_MEASURED = [("customMeasurements", "dynamic"), ("itemCount", "int")]

APP_INSIGHTS_TABLES: dict[str, list[tuple[str, str]]] = {
    "requests": _COMMON
    + _MEASURED
    + [
        ("duration", "real"),
        ("id", "string"),
        ("name", "string"),
        ("performanceBucket", "string"),
        ("resultCode", "string"),
        ("source", "string"),
        ("success", "string"),
        ("url", "string"),
    ],
    "dependencies": _COMMON
    + _MEASURED
    + [
        ("data", "string"),
        ("duration", "real"),
        ("id", "string"),
        ("name", "string"),
        ("performanceBucket", "string"),
        ("resultCode", "string"),
        ("success", "string"),
        ("target", "string"),
        ("type", "string"),
    ],
    "customMetrics": _COMMON
    + [
        ("name", "string"),
        ("value", "real"),
        ("valueCount", "int"),
        ("valueMax", "real"),
        ("valueMin", "real"),
        ("valueSum", "real"),
        ("valueStdDev", "real"),
    ],
    "traces": _COMMON + _MEASURED + [("message", "string"), ("severityLevel", "int")],
    "customEvents": _COMMON + _MEASURED + [("name", "string")],
    "exceptions": _COMMON
    + _MEASURED
    + [
        ("assembly", "string"),
        ("details", "dynamic"),
        ("handledAt", "string"),
        ("innermostAssembly", "string"),
        ("innermostMessage", "string"),
        ("innermostMethod", "string"),
        ("innermostType", "string"),
        ("message", "string"),
        ("method", "string"),
        ("outerAssembly", "string"),
        ("outerMessage", "string"),
        ("outerMethod", "string"),
        ("outerType", "string"),
        ("problemId", "string"),
        ("severityLevel", "int"),
        ("type", "string"),
    ],
    "performanceCounters": _COMMON
    + [
        ("category", "string"),
        ("counter", "string"),
        ("instance", "string"),
        ("name", "string"),
        ("value", "real"),
    ],
}


# The App Service tables the diagnostic settings write into the Log Analytics
# workspace, from Microsoft's Azure Monitor Logs table reference
# (MicrosoftDocs/azure-reference-other, azure-monitor-ref/tables/appservicehttplogs.md
# and appserviceconsolelogs.md).
_WORKSPACE_COMMON = [
    ("_ResourceId", "string"),
    ("SourceSystem", "string"),
    ("_SubscriptionId", "string"),
    ("TenantId", "string"),
    ("TimeGenerated", "datetime"),
    ("Type", "string"),
]
APP_SERVICE_TABLES: dict[str, list[tuple[str, str]]] = {
    "AppServiceHTTPLogs": _WORKSPACE_COMMON
    + [
        ("CIp", "string"),
        ("ComputerName", "string"),
        ("Cookie", "string"),
        ("CsBytes", "int"),
        ("CsHost", "string"),
        ("CsMethod", "string"),
        ("CsUriQuery", "string"),
        ("CsUriStem", "string"),
        ("CsUsername", "string"),
        ("Referer", "string"),
        ("Result", "string"),
        ("ScBytes", "int"),
        ("ScStatus", "int"),
        ("ScSubStatus", "string"),
        ("ScWin32Status", "string"),
        ("SPort", "string"),
        ("TimeTaken", "int"),
        ("UserAgent", "string"),
    ],
    "AppServiceConsoleLogs": _WORKSPACE_COMMON
    + [
        ("Category", "string"),
        ("ContainerId", "string"),
        ("Host", "string"),
        ("Level", "string"),
        ("OperationName", "string"),
        ("ResultDescription", "string"),
    ],
}
# Front Door's logs in the workspace: AzureDiagnostics, whose columns are the log's properties with a type suffix
# (_s for text). The properties are those Learn lists for Front Door Standard and Premium ("Monitor metrics and
# logs in Azure Front Door": access log, health probe log, WAF log); only the columns the workbook reads are
# declared, beside the table's own (azure-monitor-ref/tables/azurediagnostics.md).
APP_SERVICE_TABLES["AzureDiagnostics"] = _WORKSPACE_COMMON + [
    ("Category", "string"),
    ("ResourceProvider", "string"),
    ("OperationName", "string"),
    ("httpStatusCode_s", "string"),
    ("timeTaken_s", "string"),
    ("originName_s", "string"),
    ("requestUri_s", "string"),
    ("clientIP_s", "string"),
    ("ruleName_s", "string"),
    ("action_s", "string"),
]
# Which tables a workbook item of each resourceType queries.
TABLES_BY_RESOURCE_TYPE = {
    "microsoft.insights/components": ("ApplicationInsights", APP_INSIGHTS_TABLES),
    "microsoft.operationalinsights/workspaces": ("LogAnalytics", APP_SERVICE_TABLES),
}


def _schema(columns: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{name}:{kind}" for name, kind in columns) + ")"


def kql_diagnostics(
    queries: dict[str, str], resource_type: str = "microsoft.insights/components"
) -> dict[str, list[dict]]:
    """Errors and warnings the Kusto language service reports for each named query.

    The queries are checked against the tables of ``resource_type`` alone (a
    workbook item's ``resourceType``), so a query reading a table its
    resource does not hold is an error.
    """
    database, tables = TABLES_BY_RESOURCE_TYPE[resource_type]
    prefix = npm_install(KUSTO_SPEC)
    request = {
        "packageDir": str(package_dir(prefix, KUSTO_PACKAGE)),
        "database": database,
        "tables": {table: _schema(columns) for table, columns in tables.items()},
        "queries": [{"name": name, "text": text} for name, text in queries.items()],
    }
    result = subprocess.run(
        [str(node22()), str(CHECK_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Kusto checker failed:\n{result.stderr}")
    return {entry["name"]: entry["diagnostics"] for entry in json.loads(result.stdout)}
