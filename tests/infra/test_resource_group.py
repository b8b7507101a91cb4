"""Resource group: a new tagged group per stack, or an existing one named in config."""

from __future__ import annotations

GROUP = "azure-native:resources:ResourceGroup"
LOCATION = {"azure-native:location": "westeurope"}
# Extension resources: no group of their own, they live on a resource (their scope) in the group.
SCOPED = {"azure-native:authorization:RoleAssignment": "scope", "azure-native:monitor:DiagnosticSetting": "resourceUri"}


def groups_of(run) -> set[str]:
    """The resource group of every Azure resource in ``run`` (for extension resources, their scope's group)."""
    found = set()
    for r in run.resources:
        if not (r.custom and r.type.startswith("azure-native:")) or r.type.endswith(":ResourceGroup"):
            continue
        if r.type in SCOPED:
            found.add(r.get(SCOPED[r.type]).split("/")[4])
        else:
            found.add(r.get("resourceGroupName"))
    return found


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
    assert groups_of(run) == {"platform-mcp"}
    assert run.outputs["resourceGroup"].value == "platform-mcp"


def test_every_resource_is_in_the_new_group(infra):
    run = infra.run_main({**LOCATION})
    assert groups_of(run) == {run.one(GROUP).outputs["name"]}
