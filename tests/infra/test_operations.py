"""Operations: App Service logs to the workspace, metric alerts on site and plan, an optional action group."""

from __future__ import annotations

import isodate
import pytest

from components.operations import Operations, OperationsArgs
from tests.infra.builders import PLAN_ID, TAGS

DIAGNOSTIC = "azure-native:monitor:DiagnosticSetting"
ALERT = "azure-native:monitor:MetricAlert"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
WORKSPACE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.OperationalInsights/workspaces/logs1"
SITE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/sites/mcp1"
SLOT_ID = f"{SITE_ID}/slots/staging"
AUTOSCALE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Insights/autoscalesettings/autoscale1"
# (namespace, metric) -> (published time grains, published aggregation), transcribed from Learn's
# "Supported metrics for Microsoft.Web/sites", "... for Microsoft.Web/serverfarms" and
# "... for microsoft.insights/autoscalesettings" (learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/).
PUBLISHED = {
    ("Microsoft.Web/sites", "Http5xx"): (("PT1M",), "Total"),
    ("Microsoft.Web/sites", "HealthCheckStatus"): (("PT5M", "PT1H", "P1D"), "Average"),
    ("Microsoft.Web/sites", "HttpResponseTime"): (("PT1M",), "Average"),
    ("Microsoft.Web/serverfarms", "CpuPercentage"): (("PT1M",), "Average"),
    ("Microsoft.Insights/autoscalesettings", "ObservedCapacity"): (("PT1M",), "Average"),
    ("Microsoft.Insights/autoscalesettings", "ObservedMetricValue"): (("PT1M",), "Average"),
}
# A window holds at least this many points of its metric, so that one late or odd point cannot page alone.
MIN_POINTS_PER_WINDOW = 3
CATEGORIES = [
    "AppServiceHTTPLogs",
    "AppServiceConsoleLogs",
    "AppServiceAppLogs",
    "AppServicePlatformLogs",
    "AppServiceAuditLogs",
]


def run_operations(
    infra, slot=True, easy_auth=False, emails=(), threshold=70, instances=3, autoscale=True, max_count=10
):
    args = OperationsArgs(
        resource_group_name="rg-mcp",
        workspace_id=WORKSPACE_ID,
        site_id=SITE_ID,
        slot_id=SLOT_ID if slot else None,
        plan_id=PLAN_ID,
        easy_auth=easy_auth,
        instance_count=instances,
        autoscale_setting_id=AUTOSCALE_ID if autoscale else None,
        autoscale_max_count=max_count,
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


def conditions(alert) -> list[tuple[str, str, str, str, float]]:
    return [
        (c["metricNamespace"], c["metricName"], c["timeAggregation"], c["operator"], c["threshold"])
        for c in alert.get("criteria.allOf")
    ]


def test_alerts_on_the_site_for_5xx_health_and_latency_and_on_autoscale_for_cpu_at_max_scale(infra):
    found = alerts(run_operations(infra, threshold=75, instances=3, max_count=8))
    site = "Microsoft.Web/sites"
    expected = {
        "http-5xx": (SITE_ID, [(site, "Http5xx", "Total", "GreaterThan", 10)], 1, "PT5M", "PT1M"),
        "health-check": (SITE_ID, [(site, "HealthCheckStatus", "Average", "LessThan", 50)], 1, "PT15M", "PT5M"),
        "response-time": (SITE_ID, [(site, "HttpResponseTime", "Average", "GreaterThan", 2)], 2, "PT5M", "PT1M"),
        "cpu-at-max-scale": (
            AUTOSCALE_ID,
            [
                ("Microsoft.Insights/autoscalesettings", "ObservedCapacity", "Average", "GreaterThanOrEqual", 8),
                ("Microsoft.Insights/autoscalesettings", "ObservedMetricValue", "Average", "GreaterThan", 75),
            ],
            2, "PT15M", "PT5M",
        ),
    }  # fmt: skip
    assert set(found) == set(expected)
    for label, alert in found.items():
        scope, criteria, severity, window, frequency = expected[label]
        assert alert.get("criteria.odataType") == "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"
        assert all(c["criterionType"] == "StaticThresholdCriterion" for c in alert.get("criteria.allOf")), label
        assert alert.get("scopes") == [scope], label
        assert conditions(alert) == criteria, label
        assert (alert.get("severity"), alert.get("windowSize"), alert.get("evaluationFrequency")) == (
            severity,
            window,
            frequency,
        ), label
        assert alert.get("location") == "global" and alert.get("enabled") is True and alert.get("autoMitigate") is True
        assert alert.get("tags") == {**TAGS, "component": "operations"}


def minutes(duration: str) -> float:
    return isodate.parse_duration(duration).total_seconds() / 60


@pytest.mark.parametrize("autoscale", [True, False])
def test_every_alert_reads_its_metric_at_a_published_grain_and_aggregation(infra, autoscale):
    for label, alert in alerts(run_operations(infra, autoscale=autoscale)).items():
        frequency, window = minutes(alert.get("evaluationFrequency")), minutes(alert.get("windowSize"))
        for namespace, metric, aggregation, _, _ in conditions(alert):
            grains, published_aggregation = PUBLISHED[(namespace, metric)]
            finest = min(minutes(g) for g in grains)
            assert aggregation == published_aggregation, (label, metric)
            # Evaluating more often than the metric is published re-reads the same points.
            assert frequency >= finest and frequency % finest == 0, (label, metric)
            assert window >= MIN_POINTS_PER_WINDOW * finest and window % finest == 0, (label, metric)
            assert window >= frequency, label


@pytest.mark.parametrize("instances", [2, 3, 4, 10])
def test_health_alert_ignores_one_instance_out_and_pages_for_two(infra, instances):
    (_, _, _, operator, threshold) = conditions(alerts(run_operations(infra, instances=instances))["health-check"])[0]
    assert operator == "LessThan"

    def healthy_percent(out: int, of: int) -> float:  # HealthCheckStatus: the share of instances healthy
        return 100 * (of - out) / of

    assert not healthy_percent(1, instances) < threshold
    assert healthy_percent(2, instances) < threshold
    # Autoscale adds instances: one out of more stays quiet too.
    assert not healthy_percent(1, instances + 5) < threshold


def test_health_alert_of_a_single_instance_pages_when_it_is_out(infra):
    alert = alerts(run_operations(infra, instances=1))["health-check"]
    (_, _, _, _, threshold) = conditions(alert)[0]
    assert 0 < threshold < 100  # all healthy (100) is quiet, the one instance out (0) pages
    assert "the only instance" in alert.get("description")


def test_the_cpu_alert_says_what_it_detects(infra):
    with_autoscale = alerts(run_operations(infra, threshold=70, max_count=8))["cpu-at-max-scale"]
    assert "above 70%" in with_autoscale.get("description") and "maximum of 8" in with_autoscale.get("description")
    without = alerts(run_operations(infra, threshold=70, autoscale=False))
    assert "cpu-at-max-scale" not in without
    fixed = without["cpu-high"]
    assert fixed.get("scopes") == [PLAN_ID]
    assert conditions(fixed) == [("Microsoft.Web/serverfarms", "CpuPercentage", "Average", "GreaterThan", 70)]
    assert "autoscale off" in fixed.get("description") and "maximum" not in fixed.get("description")


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
