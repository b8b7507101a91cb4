"""Plan: a reserved Linux plan whose capacity is instanceCount, left to autoscale when it is on."""

from __future__ import annotations

import pytest

from components.plan import Plan, PlanArgs
from components.settings import SKUS

PLAN = "azure-native:web:AppServicePlan"
TAGS = {"project": "mcpscale-azure", "stack": "test"}


def plan_args(**overrides) -> PlanArgs:
    args = dict(
        resource_group_name="rg-mcp",
        location="westeurope",
        sku=SKUS["P0v3"],
        instance_count=3,
        autoscale=True,
        tags=TAGS,
    )
    args.update(overrides)
    return PlanArgs(**args)


def run_plan(infra, **overrides):
    return infra.run(lambda: Plan("plan", plan_args(**overrides)))


def test_plan_is_a_reserved_linux_plan_of_the_sku_with_instance_count_capacity(infra):
    run = run_plan(infra, sku=SKUS["P1v3"], instance_count=4)
    plan = run.one(PLAN)
    assert plan.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "westeurope",
        "kind": "linux",
        "reserved": True,
        "perSiteScaling": False,
        "sku": {"name": "P1v3", "tier": "PremiumV3", "capacity": 4},
        "tags": {**TAGS, "component": "plan"},
    }


def test_plan_is_a_child_of_the_plan_component(infra):
    run = run_plan(infra)
    component = run.one("mcpscale:azure:Plan")
    assert component.name == "plan" and not component.custom
    assert run.one(PLAN).parent == component.urn
    assert run.children_of(component) == [run.one(PLAN)]


def test_capacity_is_ignored_exactly_when_autoscale_owns_it(infra):
    assert run_plan(infra, autoscale=True).one(PLAN).ignore_changes == ["sku.capacity"]
    assert run_plan(infra, autoscale=False).one(PLAN).ignore_changes == []


@pytest.mark.parametrize("sku", ["B1", "S2", "P2v2", "P0v3", "P3mv3"])
def test_sku_tier_is_the_azure_tier_of_the_sku(infra, sku):
    wire = run_plan(infra, sku=SKUS[sku]).one(PLAN).get("sku")
    assert (wire["name"], wire["tier"]) == (sku, SKUS[sku].tier.name)


def test_plan_outputs_are_the_plan_resource_id_and_name(infra):
    captured = {}

    def program():
        plan = Plan("plan", plan_args(instance_count=1, autoscale=False))
        plan.id.apply(lambda v: captured.setdefault("id", v))
        plan.name.apply(lambda v: captured.setdefault("name", v))

    run = infra.run(program)
    assert captured["id"] == run.one(PLAN).outputs["id"]
    assert captured["id"].endswith("/providers/Microsoft.Web/serverfarms/" + captured["name"])
