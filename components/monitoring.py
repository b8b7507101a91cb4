"""Telemetry for the fleet: Log Analytics, workspace-based Application Insights, and the workbook.

Application Insights accepts only Microsoft Entra ID authenticated telemetry
(local auth off): the connection string alone, which is no secret, lets no
one write into the fleet's telemetry. The site and the slot publish with
their system identities, which hold :attr:`Monitoring.publisher`
("Monitoring Metrics Publisher", which covers all telemetry, not only
metrics) on the component.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights

from components.roles import MONITORING_METRICS_PUBLISHER, RoleGrant
from components.workbook import StampCharts, build_workbook

LOG_RETENTION_DAYS = 30


@dataclass(frozen=True)
class MonitoringArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    # What the workbook reads of each region's stamp, the primary first.
    stamps: pulumi.Input[Sequence[StampCharts]]
    # A GUID (workbooks must be named by one); see settings.workbook_name.
    workbook_name: str
    workbook_display_name: str
    tags: Mapping[str, str]
    # The workbook shows Front Door's logs too.
    front_door: bool = False


class Monitoring(pulumi.ComponentResource):
    connection_string: pulumi.Output[str]
    app_insights_name: pulumi.Output[str]
    workbook_id: pulumi.Output[str]
    workspace_id: pulumi.Output[str]
    publisher: RoleGrant
    """What an identity needs to send telemetry to the component."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "monitoring"}

        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018),
            retention_in_days=LOG_RETENTION_DAYS,
            tags=tags,
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type=applicationinsights.ApplicationType.WEB,
            ingestion_mode=applicationinsights.IngestionMode.LOG_ANALYTICS,
            workspace_resource_id=workspace.id,
            disable_local_auth=True,
            tags=tags,
            opts=child,
        )
        content = pulumi.Output.all(args.stamps, workspace.id).apply(
            lambda values: json.dumps(build_workbook(values[0], values[1], front_door=args.front_door))
        )
        workbook = applicationinsights.Workbook(
            f"{name}-workbook",
            resource_name_=args.workbook_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=applicationinsights.WorkbookSharedTypeKind.SHARED,
            category="workbook",
            display_name=args.workbook_display_name,
            serialized_data=content,
            # The workbook's Logs queries name no resource: they run here.
            source_id=insights.id,
            tags=tags,
            opts=child,
        )

        self.connection_string = insights.connection_string
        self.app_insights_name = insights.name
        self.workbook_id = workbook.id
        self.workspace_id = workspace.id
        self.publisher = RoleGrant("metrics-publisher", insights.id, MONITORING_METRICS_PUBLISHER)
        self.register_outputs({"appInsightsName": self.app_insights_name, "workbookId": self.workbook_id})
