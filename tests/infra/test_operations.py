"""Operations: App Service logs to the workspace, metric alerts on site and plan, an optional action group."""

from __future__ import annotations

import pytest

from components.operations import Operations, OperationsArgs
from tests.infra.builders import PLAN_ID, TAGS

DIAGNOSTIC = "azure-native:monitor:DiagnosticSetting"
ALERT = "azure-native:monitor:MetricAlert"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
WORKSPACE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.OperationalInsights/workspaces/logs1"
SITE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/sites/mcp1"
SLOT_ID = f"{SITE_ID}/slots/staging"
CATEGORIES = [
    "AppServiceHTTPLogs",
    "AppServiceConsoleLogs",
    "AppServiceAppLogs",
    "AppServicePlatformLogs",
    "AppServiceAuditLogs",
]


def run_operations(infra, slot=True, easy_auth=False, emails=(), threshold=70):
    args = OperationsArgs(
        resource_group_name="rg-mcp",
        workspace_id=WORKSPACE_ID,
        site_id=SITE_ID,
        slot_id=SLOT_ID if slot else None,
        plan_id=PLAN_ID,
        easy_auth=easy_auth,
        cpu_scale_out_threshold=threshold,
        alert_emails=tuple(emails),
        tags=TAGS,
    )
    return infra.run(lambda: Operations("operations", args))


def alerts(run) -> dict[str, object]:
    return {a.name.removeprefix("operations-"): a for a in run.of_type(ALERT)}


def test_site_and_slot_send_every_app_service_log_to_the_workspace_in_resource_specific_tables(infra):
    run = run_operations(infra)
    settings = {d.get("resourceUri"): d for d in run.of_type(DIAGNOSTIC)}
    assert set(settings) == {SITE_ID, SLOT_ID}
    for setting in settings.values():
        assert setting.inputs == {
            "name": "logs-to-workspace",
            "resourceUri": setting.get("resourceUri"),
            "workspaceId": WORKSPACE_ID,
            "logAnalyticsDestinationType": "Dedicated",
            "logs": [{"category": c, "enabled": True} for c in CATEGORIES],
        }


def test_easy_auth_decisions_are_logged_only_with_easy_auth(infra):
    for setting in run_operations(infra, easy_auth=True).of_type(DIAGNOSTIC):
        assert [log["category"] for log in setting.get("logs")] == [*CATEGORIES, "AppServiceAuthenticationLogs"]


def test_without_the_slot_only_the_site_logs(infra):
    assert [d.get("resourceUri") for d in run_operations(infra, slot=False).of_type(DIAGNOSTIC)] == [SITE_ID]


def test_alerts_on_the_site_for_5xx_health_and_latency_and_on_the_plan_for_cpu_at_max_scale(infra):
    found = alerts(run_operations(infra, threshold=75))
    assert set(found) == {"http-5xx", "health-check", "response-time", "cpu-at-max-scale"}
    expected = {
        "http-5xx": (SITE_ID, "Microsoft.Web/sites", "Http5xx", "Total", "GreaterThan", 10, 1, "PT5M"),
        "health-check": (SITE_ID, "Microsoft.Web/sites", "HealthCheckStatus", "Average", "LessThan", 100, 1, "PT5M"),
        "response-time": (SITE_ID, "Microsoft.Web/sites", "HttpResponseTime", "Average", "GreaterThan", 2, 2, "PT5M"),
        "cpu-at-max-scale": (
            PLAN_ID, "Microsoft.Web/serverfarms", "CpuPercentage", "Average", "GreaterThan", 75, 2, "PT15M"
        ),
    }  # fmt: skip
    for label, alert in found.items():
        (criterion,) = alert.get("criteria.allOf")
        assert alert.get("criteria.odataType") == "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"
        assert criterion["criterionType"] == "StaticThresholdCriterion" and criterion["name"] == label
        scope, namespace, metric, aggregation, operator, threshold, severity, window = expected[label]
        assert alert.get("scopes") == [scope], label
        assert (criterion["metricNamespace"], criterion["metricName"]) == (namespace, metric), label
        assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
            aggregation,
            operator,
            threshold,
        ), label
        assert (alert.get("severity"), alert.get("windowSize")) == (severity, window), label
        assert alert.get("location") == "global" and alert.get("enabled") is True and alert.get("autoMitigate") is True
        assert alert.get("description")
        assert alert.get("tags") == {**TAGS, "component": "operations"}


def test_alerts_exist_without_an_action_group_and_notify_no_one(infra):
    run = run_operations(infra)
    assert run.of_type(ACTION_GROUP) == []
    for alert in run.of_type(ALERT):
        assert alert.get("actions") == [], alert.name


def test_alert_emails_make_an_action_group_every_alert_notifies(infra):
    run = run_operations(infra, emails=("ops@example.com", "oncall@example.org"))
    group = run.one(ACTION_GROUP)
    assert group.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "Global",
        "groupShortName": "mcp-alerts",
        "enabled": True,
        "emailReceivers": [
            {"name": "email-1", "emailAddress": "ops@example.com", "useCommonAlertSchema": True},
            {"name": "email-2", "emailAddress": "oncall@example.org", "useCommonAlertSchema": True},
        ],
        "tags": {**TAGS, "component": "operations"},
    }
    assert len(group.get("groupShortName")) <= 12
    for alert in run.of_type(ALERT):
        assert alert.get("actions") == [{"actionGroupId": group.outputs["id"]}], alert.name
        assert group.urn in alert.dependencies


@pytest.mark.parametrize("emails", [(), ("ops@example.com",)])
def test_everything_is_a_child_of_the_operations_component(infra, emails):
    run = run_operations(infra, emails=emails)
    component = run.one("mcpscale:azure:Operations")
    assert len(run.children_of(component)) == len(run.resources) - 1 == 2 + 4 + len(emails)
