"""Plan: a reserved Linux plan of the SKU as Azure reports it, whose updates never lower autoscale's count."""

from __future__ import annotations

import logging

import grpc
import pytest

from components.plan import Plan, PlanArgs
from components.settings import SKUS

PLAN = "azure-native:web:AppServicePlan"
GET_PLAN = "azure-native:web:getAppServicePlan"
TAGS = {"project": "mcpscale-azure", "stack": "test"}
LIVE_PLAN_ID = "/subscriptions/s/resourceGroups/rg-live/providers/Microsoft.Web/serverfarms/plan-live"

# sku.tier as Azure reports it on a plan (az appservice plan show), by SKU name.
REPORTED_TIERS = {
    **dict.fromkeys(["B1", "B2", "B3"], "Basic"),
    **dict.fromkeys(["S1", "S2", "S3"], "Standard"),
    **dict.fromkeys(["P1v2", "P2v2", "P3v2"], "PremiumV2"),
    "P0v3": "Premium0V3",
    **dict.fromkeys(["P1v3", "P2v3", "P3v3"], "PremiumV3"),
    **dict.fromkeys(["P1mv3", "P2mv3", "P3mv3", "P4mv3", "P5mv3"], "PremiumMV3"),
}


def plan_args(**overrides) -> PlanArgs:
    args = {
        "resource_group_name": "rg-mcp",
        "location": "westeurope",
        "sku": SKUS["P0v3"],
        "instance_count": 3,
        "autoscale": True,
        "zone_redundant": False,
        "previous_plan_id": None,
        "tags": TAGS,
    }
    args.update(overrides)
    return PlanArgs(**args)


def live_capacity(capacity, invoked=None):
    """An answer to getAppServicePlan: the live plan with ``capacity`` instances."""

    def calls(args):
        if args.token != GET_PLAN:
            return None
        if invoked is not None:
            invoked.append(dict(args.args))
        return {"sku": {"name": "P0v3", "tier": "Premium0V3", "capacity": capacity}}

    return calls


class ProviderError(grpc.RpcError):
    """An invoke the provider failed, as the engine hands it to the program (a gRPC error with its message)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


def arm_error(status: str, code: str, message: str) -> ProviderError:
    """getAppServicePlan answered with ARM error ``code``, worded as azure-native v3 (azcore) and the engine word it."""
    rule = "-" * 80
    url = f"https://management.azure.com{LIVE_PLAN_ID}?api-version=2025-05-01"
    body = f'{{\n  "error": {{\n    "code": "{code}",\n    "message": "{message}"\n  }}\n}}'
    return ProviderError(
        f"invocation of {GET_PLAN} returned an error: request failed {LIVE_PLAN_ID}: GET {url}\n{rule}\n"
        f"RESPONSE {status}\nERROR CODE: {code}\n{rule}\n{body}\n{rule}\n"
    )


PLAN_NOT_FOUND = arm_error(
    "404: 404 Not Found",
    "ResourceNotFound",
    "The Resource 'Microsoft.Web/serverFarms/plan-live' under resource group 'rg-live' was not found. "
    "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
)
READ_FORBIDDEN = arm_error(
    "403: 403 Forbidden",
    "AuthorizationFailed",
    "The client does not have authorization to perform action 'Microsoft.Web/serverfarms/read'.",
)


def failing_read(error: ProviderError):
    def calls(args):
        if args.token == GET_PLAN:
            raise error
        return None

    return calls


def run_plan(infra, calls=None, **overrides):
    return infra.run(lambda: Plan("plan", plan_args(**overrides)), calls=calls)


def test_plan_is_a_reserved_linux_plan_of_the_sku_with_instance_count_capacity(infra):
    run = run_plan(infra, sku=SKUS["P1v3"], instance_count=4)
    plan = run.one(PLAN)
    assert plan.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "westeurope",
        "kind": "linux",
        "reserved": True,
        "perSiteScaling": False,
        "zoneRedundant": False,
        "sku": {"name": "P1v3", "tier": "PremiumV3", "capacity": 4},
        "tags": {**TAGS, "component": "plan"},
    }


def test_plan_is_a_child_of_the_plan_component(infra):
    run = run_plan(infra)
    component = run.one("mcpscale:azure:Plan")
    assert component.name == "plan" and not component.custom
    assert run.one(PLAN).parent == component.urn
    assert run.children_of(component) == [run.one(PLAN)]


def test_reported_tiers_cover_every_allowed_sku():
    assert set(REPORTED_TIERS) == set(SKUS)


@pytest.mark.parametrize("sku", sorted(SKUS))
def test_sku_tier_is_the_tier_azure_reports_for_the_sku(infra, sku):
    wire = run_plan(infra, sku=SKUS[sku]).one(PLAN).get("sku")
    assert (wire["name"], wire["tier"]) == (sku, REPORTED_TIERS[sku])


def test_zone_redundancy_is_sent_as_configured(infra):
    assert run_plan(infra, zone_redundant=True).one(PLAN).get("zoneRedundant") is True


@pytest.mark.parametrize("autoscale", [True, False])
def test_capacity_is_never_left_to_state(infra, autoscale):
    # ignore_changes would send the capacity recorded in state on any other update.
    assert (
        run_plan(infra, autoscale=autoscale, previous_plan_id=LIVE_PLAN_ID, calls=live_capacity(7))
        .one(PLAN)
        .ignore_changes
        == []
    )


def test_an_update_sends_the_live_capacity_autoscale_set_when_it_is_larger(infra):
    invoked = []
    run = run_plan(infra, instance_count=3, previous_plan_id=LIVE_PLAN_ID, calls=live_capacity(7, invoked))
    assert run.one(PLAN).get("sku.capacity") == 7
    assert invoked == [{"resourceGroupName": "rg-live", "name": "plan-live"}]


def test_an_update_raises_a_live_capacity_below_a_new_instance_count(infra):
    run = run_plan(infra, instance_count=5, previous_plan_id=LIVE_PLAN_ID, calls=live_capacity(2))
    assert run.one(PLAN).get("sku.capacity") == 5


def test_the_first_deployment_reads_nothing_and_sends_instance_count(infra):
    # No calls answer getAppServicePlan: an invoke would fail the test.
    assert run_plan(infra, instance_count=4, previous_plan_id=None).one(PLAN).get("sku.capacity") == 4


def test_without_autoscale_instance_count_is_the_capacity_whatever_runs_live(infra):
    run = run_plan(infra, autoscale=False, instance_count=2, previous_plan_id=LIVE_PLAN_ID)
    assert run.one(PLAN).get("sku.capacity") == 2


def test_plan_outputs_are_the_plan_resource_id_and_name(infra):
    captured = {}

    def program():
        plan = Plan("plan", plan_args(instance_count=1, autoscale=False))
        plan.id.apply(lambda v: captured.setdefault("id", v))
        plan.name.apply(lambda v: captured.setdefault("name", v))

    run = infra.run(program)
    assert captured["id"] == run.one(PLAN).outputs["id"]
    assert captured["id"].endswith("/providers/Microsoft.Web/serverfarms/" + captured["name"])


@pytest.mark.parametrize("preview", [True, False])
def test_a_plan_deleted_out_of_band_gets_instance_count_and_a_warning_not_a_failed_run(infra, caplog, preview):
    with caplog.at_level(logging.WARNING):
        plan = infra.run(
            lambda: Plan("plan", plan_args(instance_count=3, previous_plan_id=LIVE_PLAN_ID)),
            preview=preview,
            calls=failing_read(PLAN_NOT_FOUND),
        ).one(PLAN)
    assert plan.get("sku.capacity") == 3
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert LIVE_PLAN_ID in warning and "no longer exists" in warning and "instanceCount (3)" in warning


def test_any_failed_read_of_the_live_plan_falls_back_to_instance_count_naming_the_error(infra, caplog):
    with caplog.at_level(logging.WARNING):
        plan = run_plan(infra, instance_count=4, previous_plan_id=LIVE_PLAN_ID, calls=failing_read(READ_FORBIDDEN))
    assert plan.one(PLAN).get("sku.capacity") == 4
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "AuthorizationFailed" in warning and "instanceCount (4)" in warning
