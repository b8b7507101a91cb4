"""Operations: App Service logs into the workspace, metric alerts, and who hears about them.

Diagnostic settings send the site's and the slot's platform logs to the Log
Analytics workspace in resource-specific tables: HTTP access logs, console
output (where Oryx build and start-up failures appear), app logs, platform
events (start, stop, swap), audit (publishing sign-ins) and, with Easy Auth,
its authentication decisions. The workbook (components/workbook.py) reads
the HTTP and console tables.

Metric alerts exist in every stack and page only for real trouble: each is
evaluated no more often than its metric is published, over a window of at
least three points, at thresholds that one instance restarting or autoscale
at work do not cross. They always fire into Azure Monitor (portal,
``az monitor metrics alert``). With ``alertEmails`` set they also
notify an action group of those addresses, and autoscale sends its scale
notifications to the same addresses (an autoscale setting cannot notify an
action group itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

LOG_CATEGORIES = (
    "AppServiceHTTPLogs",
    "AppServiceConsoleLogs",
    "AppServiceAppLogs",
    "AppServicePlatformLogs",
    "AppServiceAuditLogs",
)
EASY_AUTH_LOG_CATEGORY = "AppServiceAuthenticationLogs"
DIAGNOSTIC_SETTING_NAME = "logs-to-workspace"

SITE_NAMESPACE = "Microsoft.Web/sites"
PLAN_NAMESPACE = "Microsoft.Web/serverfarms"
AUTOSCALE_NAMESPACE = "Microsoft.Insights/autoscalesettings"
# Short names are what e-mails and SMS show; at most 12 characters.
ACTION_GROUP_SHORT_NAME = "mcp-alerts"

# Severities: 1 = the service is failing callers, 2 = it is degraded.
FAILING, DEGRADED = 1, 2
# More than a handful of 5xx in 5 minutes is an incident, not noise.
HTTP_5XX_PER_5_MINUTES = 10
# Tool calls are CPU-bound and fast; 2 s on average is far from normal.
SLOW_RESPONSE_SECONDS = 2
# HealthCheckStatus is published at PT5M and coarser (Learn, "Supported metrics for Microsoft.Web/sites"):
# evaluated every 5 minutes over 15, three points decide, and one late point cannot page.
HEALTH_FREQUENCY, HEALTH_WINDOW = "PT5M", "PT15M"
# Three of autoscale's 5-minute scale-out windows (components/autoscale.py): CPU that high for that long is
# not a burst the next instance would absorb.
CPU_FREQUENCY, CPU_WINDOW = "PT5M", "PT15M"


@dataclass(frozen=True)
class Criterion:
    """One static-threshold condition on a metric of the alert's resource."""

    metric: str
    aggregation: str
    operator: str
    threshold: float


@dataclass(frozen=True)
class Alert:
    """A metric alert on one resource: it fires when all of its criteria hold over the window."""

    label: str
    description: str
    namespace: str
    criteria: tuple[Criterion, ...]
    severity: int
    window: str = "PT5M"
    frequency: str = "PT1M"


@dataclass(frozen=True)
class OperationsArgs:
    resource_group_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    site_id: pulumi.Input[str]
    # None when the staging slot is off.
    slot_id: pulumi.Input[str] | None
    plan_id: pulumi.Input[str]
    easy_auth: bool
    # The fewest instances the site runs (instanceCount; autoscale's minimum).
    instance_count: int
    # The autoscale setting, None when autoscale is off; autoscale_max_count is its maximum.
    autoscale_setting_id: pulumi.Input[str] | None
    autoscale_max_count: int
    # The autoscale scale-out threshold (the CPU alert fires above it).
    cpu_scale_out_threshold: int
    alert_emails: tuple[str, ...]
    tags: Mapping[str, str]


def healthy_percent_threshold(instances: int) -> float:
    """The HealthCheckStatus below which more than one of ``instances`` instances is out of rotation.

    HealthCheckStatus is the site's average over its instances of 100 (healthy) or 0 (deemed unhealthy
    after the configured failed pings; Learn, "Monitor App Service instances by using Health check"; Azure
    Monitor Baseline Alerts' rule for it fires below 100), so the percentage of healthy instances: one
    instance out of n reads 100 (n-1)/n, two read 100 (n-2)/n.
    The threshold sits halfway between, so one instance restarting or being replaced never pages and a
    second one failing does. Autoscale only adds instances, which moves one-out further above it. With a
    single instance, one out is everything: it pages once that instance fails most of the window.
    """
    if instances == 1:
        return 50.0
    return 100 * (instances - 1.5) / instances


def site_alerts(instance_count: int) -> list[Alert]:
    healthy = healthy_percent_threshold(instance_count)
    health = (
        "the only instance has failed health check (/health) for most of 15 minutes"
        if instance_count == 1
        else f"more than one of {instance_count} instances failing health check (/health) over 15 minutes "
        "and out of rotation (one restarting does not page)"
    )
    return [
        Alert(
            "http-5xx",
            f"More than {HTTP_5XX_PER_5_MINUTES} HTTP 5xx responses in 5 minutes.",
            SITE_NAMESPACE,
            (Criterion("Http5xx", "Total", "GreaterThan", HTTP_5XX_PER_5_MINUTES),),
            FAILING,
        ),
        Alert(
            "health-check",
            f"Healthy instances below {healthy:g}%: {health}.",
            SITE_NAMESPACE,
            (Criterion("HealthCheckStatus", "Average", "LessThan", healthy),),
            FAILING,
            window=HEALTH_WINDOW,
            frequency=HEALTH_FREQUENCY,
        ),
        Alert(
            "response-time",
            f"Average response time above {SLOW_RESPONSE_SECONDS} s over 5 minutes.",
            SITE_NAMESPACE,
            (Criterion("HttpResponseTime", "Average", "GreaterThan", SLOW_RESPONSE_SECONDS),),
            DEGRADED,
        ),
    ]


def at_max_scale_alert(cpu_threshold: int, max_count: int) -> Alert:
    """On the autoscale setting: CPU above the scale-out threshold while autoscale holds its maximum.

    Both conditions are metrics of the one autoscale setting (Learn, "Troubleshoot Azure Monitor
    autoscale": ObservedCapacity is the instance count autoscale sees, ObservedMetricValue the
    value of the metric its rules scale on, here the plan's CPU), so one single-resource alert
    holds both (SingleResourceMultipleMetricCriteria, metricAlert_API.json 2018-03-01). The
    capacity never exceeds the maximum, so its average reaches it only if it held all window.
    """
    return Alert(
        "cpu-at-max-scale",
        f"Plan CPU above {cpu_threshold}% (the scale-out threshold) for 15 minutes while autoscale has held "
        f"its maximum of {max_count} instances: more load will not get more instances; "
        "raise autoscaleMaxCount or the sku.",
        AUTOSCALE_NAMESPACE,
        (
            Criterion("ObservedCapacity", "Average", "GreaterThanOrEqual", max_count),
            Criterion("ObservedMetricValue", "Average", "GreaterThan", cpu_threshold),
        ),
        DEGRADED,
        window=CPU_WINDOW,
        frequency=CPU_FREQUENCY,
    )


def fixed_scale_cpu_alert(cpu_threshold: int) -> Alert:
    """On the plan, with autoscale off: nothing adds instances, so CPU this high for this long needs a person."""
    return Alert(
        "cpu-high",
        f"Plan CPU above {cpu_threshold}% for 15 minutes with autoscale off: the fixed instance count is short "
        "of the load; raise instanceCount or the sku, or turn autoscale on.",
        PLAN_NAMESPACE,
        (Criterion("CpuPercentage", "Average", "GreaterThan", cpu_threshold),),
        DEGRADED,
        window=CPU_WINDOW,
        frequency=CPU_FREQUENCY,
    )


class Operations(pulumi.ComponentResource):
    """Diagnostic settings for site and slot, metric alerts on site and plan, and an optional action group."""

    action_group_id: pulumi.Output[str] | None
    log_settings: list[monitor.DiagnosticSetting]
    """The diagnostic settings: code deployed after them has its build and start-up in the logs."""

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Operations", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "operations"}

        categories = [*LOG_CATEGORIES, *([EASY_AUTH_LOG_CATEGORY] if args.easy_auth else [])]
        targets = {"site": args.site_id, **({"slot": args.slot_id} if args.slot_id is not None else {})}
        self.log_settings = [
            monitor.DiagnosticSetting(
                f"{name}-{target}-logs",
                name=DIAGNOSTIC_SETTING_NAME,
                resource_uri=resource_id,
                workspace_id=args.workspace_id,
                # One table per category (AppServiceHTTPLogs, ...), not AzureDiagnostics.
                log_analytics_destination_type="Dedicated",
                logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in categories],
                opts=child,
            )
            for target, resource_id in targets.items()
        ]

        self.action_group_id = None
        if args.alert_emails:
            group = monitor.ActionGroup(
                f"{name}-alerts",
                resource_group_name=args.resource_group_name,
                location="Global",
                group_short_name=ACTION_GROUP_SHORT_NAME,
                enabled=True,
                email_receivers=[
                    monitor.MicrosoftCommonEmailReceiverArgs(
                        name=f"email-{i}", email_address=address, use_common_alert_schema=True
                    )
                    for i, address in enumerate(args.alert_emails, start=1)
                ],
                tags=tags,
                opts=child,
            )
            self.action_group_id = group.id

        actions = [monitor.MetricAlertActionArgs(action_group_id=self.action_group_id)] if self.action_group_id else []
        scoped = [(args.site_id, alert) for alert in site_alerts(args.instance_count)]
        if args.autoscale_setting_id is not None:
            scoped.append(
                (args.autoscale_setting_id, at_max_scale_alert(args.cpu_scale_out_threshold, args.autoscale_max_count))
            )
        else:
            scoped.append((args.plan_id, fixed_scale_cpu_alert(args.cpu_scale_out_threshold)))
        for scope, alert in scoped:
            monitor.MetricAlert(
                f"{name}-{alert.label}",
                resource_group_name=args.resource_group_name,
                location="global",
                description=alert.description,
                severity=alert.severity,
                enabled=True,
                scopes=[scope],
                evaluation_frequency=alert.frequency,
                window_size=alert.window,
                criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
                    odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                    all_of=[
                        monitor.MetricCriteriaArgs(
                            criterion_type="StaticThresholdCriterion",
                            name=criterion.metric,
                            metric_namespace=alert.namespace,
                            metric_name=criterion.metric,
                            time_aggregation=criterion.aggregation,
                            operator=criterion.operator,
                            threshold=criterion.threshold,
                        )
                        for criterion in alert.criteria
                    ],
                ),
                # Resolves itself once the metric is back within the threshold.
                auto_mitigate=True,
                actions=actions,
                tags=tags,
                opts=child,
            )
        self.register_outputs({"actionGroupId": self.action_group_id})
