"""Operations: App Service logs into the workspace, metric alerts, and who hears about them.

Diagnostic settings send the site's and the slot's platform logs to the Log
Analytics workspace in resource-specific tables: HTTP access logs, console
output (where Oryx build and start-up failures appear), app logs, platform
events (start, stop, swap), audit (publishing sign-ins) and, with Easy Auth,
its authentication decisions. The workbook (components/workbook.py) reads
the HTTP and console tables.

Metric alerts exist in every stack; they always fire into Azure Monitor
(portal, ``az monitor metrics alert``). With ``alertEmails`` set they also
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
# Short names are what e-mails and SMS show; at most 12 characters.
ACTION_GROUP_SHORT_NAME = "mcp-alerts"

# Severities: 1 = the service is failing callers, 2 = it is degraded.
FAILING, DEGRADED = 1, 2
# More than a handful of 5xx in 5 minutes is an incident, not noise.
HTTP_5XX_PER_5_MINUTES = 10
# The health check answers 100 (percent of instances healthy) when all are.
HEALTHY_PERCENT = 100
# Tool calls are CPU-bound and fast; 2 s on average is far from normal.
SLOW_RESPONSE_SECONDS = 2
# Longer than autoscale needs to add an instance (5-minute window, then a
# 5-minute cooldown), so CPU this high for this long means autoscale is at
# its maximum (or off) and more load will not get more instances.
CPU_AT_MAXIMUM_WINDOW = "PT15M"


@dataclass(frozen=True)
class Metric:
    """One static-threshold metric alert."""

    label: str
    description: str
    namespace: str
    metric: str
    aggregation: str
    operator: str
    threshold: float
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
    # The autoscale scale-out threshold (the CPU alert fires above it).
    cpu_scale_out_threshold: int
    alert_emails: tuple[str, ...]
    tags: Mapping[str, str]


def site_alerts() -> list[Metric]:
    return [
        Metric(
            "http-5xx",
            f"More than {HTTP_5XX_PER_5_MINUTES} HTTP 5xx responses in 5 minutes.",
            SITE_NAMESPACE,
            "Http5xx",
            "Total",
            "GreaterThan",
            HTTP_5XX_PER_5_MINUTES,
            FAILING,
        ),
        Metric(
            "health-check",
            "Health check (/health) below 100%: at least one instance is failing it and is taken out of rotation.",
            SITE_NAMESPACE,
            "HealthCheckStatus",
            "Average",
            "LessThan",
            HEALTHY_PERCENT,
            FAILING,
        ),
        Metric(
            "response-time",
            f"Average response time above {SLOW_RESPONSE_SECONDS} s over 5 minutes.",
            SITE_NAMESPACE,
            "HttpResponseTime",
            "Average",
            "GreaterThan",
            SLOW_RESPONSE_SECONDS,
            DEGRADED,
        ),
    ]


def plan_alerts(cpu_threshold: int) -> list[Metric]:
    return [
        Metric(
            "cpu-at-max-scale",
            f"Plan CPU above {cpu_threshold}% (the scale-out threshold) for 15 minutes: "
            "autoscale is at its maximum and cannot add instances.",
            PLAN_NAMESPACE,
            "CpuPercentage",
            "Average",
            "GreaterThan",
            cpu_threshold,
            DEGRADED,
            window=CPU_AT_MAXIMUM_WINDOW,
            frequency="PT5M",
        )
    ]


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
        scoped = [(args.site_id, alert) for alert in site_alerts()]
        scoped += [(args.plan_id, alert) for alert in plan_alerts(args.cpu_scale_out_threshold)]
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
                            name=alert.label,
                            metric_namespace=alert.namespace,
                            metric_name=alert.metric,
                            time_aggregation=alert.aggregation,
                            operator=alert.operator,
                            threshold=alert.threshold,
                        )
                    ],
                ),
                # Resolves itself once the metric is back within the threshold.
                auto_mitigate=True,
                actions=actions,
                tags=tags,
                opts=child,
            )
        self.register_outputs({"actionGroupId": self.action_group_id})
