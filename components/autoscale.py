"""CPU autoscale for the plan: out under load, back in when it passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

# The plan's average CPU across its instances (Azure Monitor platform metric).
CPU_METRIC = "CpuPercentage"
CPU_METRIC_NAMESPACE = "microsoft.web/serverfarms"
TIME_GRAIN = "PT1M"
# Out reacts within minutes; in waits longer, so a short lull after a burst
# does not drop instances that are needed again a minute later.
SCALE_OUT_WINDOW = "PT5M"
SCALE_OUT_COOLDOWN = "PT5M"
SCALE_IN_WINDOW = "PT10M"
SCALE_IN_COOLDOWN = "PT10M"


@dataclass(frozen=True)
class AutoscaleArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    plan_id: pulumi.Input[str]
    min_count: int
    max_count: int
    scale_out_cpu: int
    scale_in_cpu: int
    # Who hears about each scale action (alertEmails); empty: no one.
    notify_emails: tuple[str, ...]
    tags: Mapping[str, str]

    def __post_init__(self) -> None:
        if not 1 <= self.min_count <= self.max_count:
            raise ValueError(f"autoscale range {self.min_count}..{self.max_count}: expected 1 <= min <= max")
        if not 0 < self.scale_in_cpu < self.scale_out_cpu < 100:
            raise ValueError(
                f"cpu thresholds in={self.scale_in_cpu} out={self.scale_out_cpu}: expected 0 < in < out < 100"
            )


def _cpu_rule(
    plan_id: pulumi.Input[str],
    operator: monitor.ComparisonOperationType,
    threshold: int,
    window: str,
    direction: monitor.ScaleDirection,
    cooldown: str,
) -> monitor.ScaleRuleArgs:
    return monitor.ScaleRuleArgs(
        metric_trigger=monitor.MetricTriggerArgs(
            metric_name=CPU_METRIC,
            metric_namespace=CPU_METRIC_NAMESPACE,
            metric_resource_uri=plan_id,
            time_grain=TIME_GRAIN,
            statistic=monitor.MetricStatisticType.AVERAGE,
            time_window=window,
            time_aggregation=monitor.TimeAggregationType.AVERAGE,
            operator=operator,
            threshold=threshold,
        ),
        scale_action=monitor.ScaleActionArgs(
            direction=direction,
            type=monitor.ScaleType.CHANGE_COUNT,
            value="1",
            cooldown=cooldown,
        ),
    )


class Autoscale(pulumi.ComponentResource):
    """An AutoscaleSetting on the plan: min = default = instanceCount, max = autoscaleMaxCount."""

    id: pulumi.Output[str]

    def __init__(self, name: str, args: AutoscaleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Autoscale", name, None, opts)
        setting = monitor.AutoscaleSetting(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            target_resource_uri=args.plan_id,
            enabled=True,
            profiles=[
                monitor.AutoscaleProfileArgs(
                    name="cpu",
                    capacity=monitor.ScaleCapacityArgs(
                        minimum=str(args.min_count),
                        default=str(args.min_count),
                        maximum=str(args.max_count),
                    ),
                    rules=[
                        _cpu_rule(
                            args.plan_id,
                            monitor.ComparisonOperationType.GREATER_THAN,
                            args.scale_out_cpu,
                            SCALE_OUT_WINDOW,
                            monitor.ScaleDirection.INCREASE,
                            SCALE_OUT_COOLDOWN,
                        ),
                        _cpu_rule(
                            args.plan_id,
                            monitor.ComparisonOperationType.LESS_THAN,
                            args.scale_in_cpu,
                            SCALE_IN_WINDOW,
                            monitor.ScaleDirection.DECREASE,
                            SCALE_IN_COOLDOWN,
                        ),
                    ],
                )
            ],
            notifications=[
                monitor.AutoscaleNotificationArgs(
                    operation=monitor.OperationType.SCALE,
                    email=monitor.EmailNotificationArgs(
                        custom_emails=list(args.notify_emails),
                        send_to_subscription_administrator=False,
                        send_to_subscription_co_administrators=False,
                    ),
                )
            ]
            if args.notify_emails
            else None,
            tags={**args.tags, "component": "autoscale"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id = setting.id
        self.min_count = args.min_count
        self.max_count = args.max_count
        self.register_outputs({"id": self.id, "range": f"{args.min_count}..{args.max_count}"})
