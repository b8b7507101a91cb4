"""Resource group: a new tagged group per stack, or an existing one named in config."""

from __future__ import annotations

GROUP = "azure-native:resources:ResourceGroup"
LOCATION = {"azure-native:location": "westeurope"}


def test_a_new_group_is_created_in_the_stack_location_and_tagged(infra):
    run = infra.run_main({**LOCATION})
    group = run.one(GROUP)
    assert group.inputs == {
        "location": "westeurope",
        "tags": {"project": "mcpscale-azure", "stack": "test", "component": "resource-group"},
    }
    assert run.outputs["resourceGroup"].value == group.outputs["name"]


def test_an_existing_group_is_used_and_not_created(infra):
    run = infra.run_main({**LOCATION, "resourceGroupName": "platform-mcp"})
    assert run.of_type(GROUP) == []
    groups = {r.get("resourceGroupName") for r in run.resources if r.custom and r.type.startswith("azure-native:")}
    assert groups == {"platform-mcp"}
    assert run.outputs["resourceGroup"].value == "platform-mcp"


def test_every_resource_is_in_the_new_group(infra):
    run = infra.run_main({**LOCATION})
    name = run.one(GROUP).outputs["name"]
    in_group = [r for r in run.resources if r.type.startswith("azure-native:") and r.type != GROUP]
    assert in_group and all(r.get("resourceGroupName") == name for r in in_group)
