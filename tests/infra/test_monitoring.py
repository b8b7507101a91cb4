"""Monitoring: Log Analytics, workspace-based App Insights, and the fleet workbook."""

from __future__ import annotations

import json
import uuid

import pulumi

from components.monitoring import LOG_RETENTION_DAYS, Monitoring, MonitoringArgs
from components.settings import workbook_name
from components.workbook import StampCharts, build_workbook

PLAN_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/serverfarms/plan1"
SITE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/sites/site1"
AUTOSCALE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Insights/autoscalesettings/as1"
STAMPS = [StampCharts("westeurope", PLAN_ID, SITE_ID, AUTOSCALE_ID)]
TAGS = {"project": "mcpscale-azure", "stack": "test"}
WORKSPACE = "azure-native:operationalinsights:Workspace"
INSIGHTS = "azure-native:applicationinsights:Component"
WORKBOOK = "azure-native:applicationinsights:Workbook"


def run_monitoring(infra, stamps=STAMPS, sink=None):
    def program():
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                resource_group_name="rg-mcp",
                location="westeurope",
                stamps=stamps,
                workbook_name=workbook_name("mcpscale-azure", "test"),
                workbook_display_name="MCP fleet (mcpscale-azure/test)",
                tags=TAGS,
            ),
        )
        if sink is not None:
            sink.append(monitoring)

    return infra.run(program)


def test_log_analytics_workspace(infra):
    workspace = run_monitoring(infra).one(WORKSPACE)
    assert workspace.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "westeurope",
        "sku": {"name": "PerGB2018"},
        "retentionInDays": LOG_RETENTION_DAYS,
        "tags": {**TAGS, "component": "monitoring"},
    }


def test_app_insights_is_workspace_based(infra):
    run = run_monitoring(infra)
    workspace, insights = run.one(WORKSPACE), run.one(INSIGHTS)
    assert insights.get("workspaceResourceId") == workspace.outputs["id"]
    assert insights.get("ingestionMode") == "LogAnalytics"
    assert insights.get("kind") == "web" and insights.get("applicationType") == "web"
    assert insights.get("tags") == {**TAGS, "component": "monitoring"}
    assert workspace.urn in insights.property_dependencies["workspaceResourceId"]


def test_workbook_content_is_the_fleet_workbook_for_the_stamps(infra):
    run = run_monitoring(infra)
    workbook, workspace = run.one(WORKBOOK), run.one(WORKSPACE)
    assert json.loads(workbook.get("serializedData")) == build_workbook(STAMPS, workspace.outputs["id"])
    assert workspace.urn in workbook.property_dependencies["serializedData"]
    assert json.loads(workbook.get("serializedData"))["version"] == "Notebook/1.0"


def test_workbook_waits_for_stamps_known_only_later(infra):
    """The fleet makes the monitoring before the stamps and resolves what the workbook charts once they exist."""
    later = [StampCharts("westeurope", PLAN_ID, SITE_ID), StampCharts("northeurope", PLAN_ID + "-2", SITE_ID + "-2")]
    run = run_monitoring(infra, stamps=pulumi.Output.from_input(later))
    workbook = run.one(WORKBOOK)
    assert json.loads(workbook.get("serializedData")) == build_workbook(later, run.one(WORKSPACE).outputs["id"])


def test_workbook_is_a_shared_workbook_named_by_a_stable_guid_querying_app_insights(infra):
    run = run_monitoring(infra)
    workbook, insights = run.one(WORKBOOK), run.one(INSIGHTS)
    name = workbook.get("resourceName")
    assert str(uuid.UUID(name)) == name
    assert name == workbook_name("mcpscale-azure", "test")
    assert workbook.get("kind") == "shared" and workbook.get("category") == "workbook"
    assert workbook.get("displayName") == "MCP fleet (mcpscale-azure/test)"
    assert workbook.get("sourceId") == insights.outputs["id"]
    assert insights.urn in workbook.dependencies
    assert workbook.get("tags") == {**TAGS, "component": "monitoring"}


def test_resources_are_children_of_the_monitoring_component(infra):
    run = run_monitoring(infra)
    component = run.one("mcpscale:azure:Monitoring")
    assert sorted(r.type for r in run.children_of(component)) == sorted([WORKSPACE, INSIGHTS, WORKBOOK])


def test_outputs_connection_string_name_and_workbook_id(infra):
    sink = []
    run = run_monitoring(infra, sink=sink)
    seen = {}

    async def resolve():
        seen["connection"] = await sink[0].connection_string.future()
        seen["name"] = await sink[0].app_insights_name.future()
        seen["workbook"] = await sink[0].workbook_id.future()

    infra.run(resolve)
    insights, workbook = run.one(INSIGHTS), run.one(WORKBOOK)
    assert seen == {
        "connection": insights.outputs["connectionString"],
        "name": insights.outputs["name"],
        "workbook": workbook.outputs["id"],
    }


def test_app_insights_accepts_only_entra_id_authenticated_telemetry(infra):
    assert run_monitoring(infra).one(INSIGHTS).get("disableLocalAuth") is True


def test_publishers_get_monitoring_metrics_publisher_on_app_insights(infra):
    sink = []
    run = run_monitoring(infra, sink=sink)
    publisher = sink[0].publisher
    assert publisher.role == "3913510d-42f4-4e42-8a64-420c390055eb"
    seen = []

    async def resolve():
        seen.append(await pulumi.Output.from_input(publisher.scope).future())

    infra.run(resolve)
    assert seen == [run.one(INSIGHTS).outputs["id"]]
