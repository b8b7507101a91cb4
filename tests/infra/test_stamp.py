"""Region stamps (components/stamp.py) as the fleet builds them: one region unchanged from before stamps existed,
several regions each with a full stamp behind one Front Door that every site and slot is locked to."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.front_door_lock import FRONT_DOOR_ID_HEADER, FRONT_DOOR_SERVICE_TAG
from components.workbook import StampCharts, build_workbook
from tests.infra.conftest import StackRun, mocked_stack
from tests.infra.engine_urns import identities
from tests.infra.test_front_door import ENDPOINT_HOST, FRONT_DOOR_ID, SHAPES, shape_errors, validator
from tests.infra.test_front_door import computed as front_door_outputs
from tests.infra.test_program import EASY_AUTH, PROD_AZURE_RESOURCES, app_settings

# The engine URNs of every resource of these stacks as the program registered them before stamps existed
# (generated from that program with tests/infra/engine_urns.py; never regenerate it from the current one).
BEFORE_STAMPS = json.loads(Path(__file__).with_name("single_region_urns.json").read_text())
REGIONS = ("westeurope", "northeurope", "swedencentral")
STAMP = "mcpscale:azure:RegionStamp"
WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"
VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
AUTH = "azure-native:web:WebAppAuthSettingsV2"
SLOT_AUTH = "azure-native:web:WebAppAuthSettingsV2Slot"


def variants(infra) -> dict[str, dict]:
    prod = infra.stack_config("prod")
    return {
        "prod": prod,
        "prod, Easy Auth, alert e-mails, a swap": {**prod, **EASY_AUTH, "alertEmails": "ops@example.com", "swap": "1"},
        "dev": infra.stack_config("dev"),
    }


def swap_baseline(args):
    return {"stdout": "a" * 64} if args.name.endswith("swap-baseline") else None


@pytest.mark.parametrize("variant", sorted(BEFORE_STAMPS))
def test_a_single_region_stack_keeps_every_resource_it_had_before_stamps(infra, variant):
    run = infra.run_main(variants(infra)[variant], computed=swap_baseline)
    before = set(BEFORE_STAMPS[variant])

    matched: Counter[str] = Counter()
    for identity in identities(run):
        if identity.type == STAMP:
            continue  # new, and a component: nothing in Azure
        found = identity.known_as & before
        assert len(found) == 1, (identity.type, identity.name, sorted(found))
        matched.update(found)
    assert set(matched) == before, sorted(before - set(matched))
    assert max(matched.values()) == 1


@pytest.fixture(scope="module")
def multi_region() -> Iterator[Callable[..., StackRun]]:
    """``multi_region(count, **config)``: the prod stack over the first ``count`` regions behind Front Door, run once
    per module for each count and config (the tests only read the runs)."""
    runs: dict[tuple, StackRun] = {}
    with mocked_stack() as harness:

        def run(count: int, **config: Any) -> StackRun:
            key = (count, tuple(sorted(config.items())))
            if key not in runs:
                runs[key] = harness.run_main(
                    {**harness.stack_config("prod"), "regions": ",".join(REGIONS[:count]), "frontDoor": True, **config},
                    computed=lambda args: front_door_outputs(args) or swap_baseline(args),
                )
            return runs[key]

        yield run


def stamp_of(run, registration) -> str:
    """The region of the stamp ``registration`` lives under ("" when outside every stamp)."""
    parents = {r.urn: r for r in run.resources}
    node = registration
    while node is not None:
        if node.type == STAMP:
            return node.inputs.get("region", node.name.removeprefix("stamp-") if node.name != "stamp" else REGIONS[0])
        node = parents.get(node.parent)
    return ""


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_region_gets_a_full_stamp_and_the_fleet_shares_the_rest(multi_region, count):
    run = multi_region(count)
    per_region: dict[str, Counter[str]] = {}
    for registration in run.resources:
        if registration.custom:
            per_region.setdefault(stamp_of(run, registration), Counter())[registration.type] += 1
    shared = per_region.pop("")
    assert sorted(per_region) == sorted(REGIONS[:count])
    first = per_region[REGIONS[0]]
    # Everything a prod stack of one region has, but what the fleet shares.
    fleet_wide = {"azure-native:resources:ResourceGroup", *(t for t in PROD_AZURE_RESOURCES if "insights:" in t)}
    assert first == {t: n for t, n in PROD_AZURE_RESOURCES.items() if t not in fleet_wide}
    for region in REGIONS[1:count]:
        assert per_region[region] == first, region
    assert shared == {
        "azure-native:resources:ResourceGroup": 1,
        PASSWORD: 2,
        "azure-native:operationalinsights:Workspace": 1,
        "azure-native:applicationinsights:Component": 1,
        "azure-native:applicationinsights:Workbook": 1,
        **{t: (count if t == "azure-native:cdn:AFDOrigin" else 1) for t in SHAPES},
        "command:local:Command": 2 * count,
    }
    assert {s.get("location") for s in run.of_type(WEBAPP)} == set(REGIONS[:count])


def test_every_region_holds_the_same_key_rings_generated_once(multi_region):
    run = multi_region(3)
    assert len(run.of_type(PASSWORD)) == 2
    assert len(run.of_type(VAULT)) == 3
    rings = {}
    for secret in run.of_type(SECRET):
        rings.setdefault(secret.get("secretName"), set()).add(secret.get("properties.value"))
        assert secret.is_secret("properties.value")
    assert {name: len(values) for name, values in rings.items()} == {"mcp-handle-keys": 1, "mcp-request-state-keys": 1}
    assert all(len(v.get("vaultName", "") or v.name) <= 24 - 8 for v in run.of_type(VAULT))


def test_every_site_and_slot_admits_only_this_front_door_and_easy_auth_uses_the_forwarded_host(multi_region):
    run = multi_region(2, **EASY_AUTH)
    access = validator("siteaccess_2025-05-01", "SiteConfigAccessRestrictions")
    apps = run.of_type(WEBAPP) + run.of_type(SLOT)
    assert len(apps) == 4
    for app in apps:
        config = app.get("siteConfig")
        restrictions = {k: v for k, v in config.items() if "ipsecurityrestrictions" in k.lower()}
        assert not list(access.iter_errors(restrictions)), app.name
        (rule,) = restrictions["ipSecurityRestrictions"]
        assert (rule["ipAddress"], rule["headers"]) == (FRONT_DOOR_SERVICE_TAG, {FRONT_DOOR_ID_HEADER: [FRONT_DOOR_ID]})
        assert restrictions["ipSecurityRestrictionsDefaultAction"] == "Deny"
        assert run.one("azure-native:cdn:Profile").urn in app.dependencies
    http = validator("siteaccess_2025-05-01", "HttpSettings")
    for auth in run.of_type(AUTH) + run.of_type(SLOT_AUTH):
        assert auth.get("httpSettings") == {"requireHttps": True, "forwardProxy": {"convention": "Standard"}}
        assert not list(http.iter_errors(auth.get("httpSettings")))


def test_without_front_door_nothing_is_locked(infra):
    run = infra.run_main({**infra.stack_config("prod"), **EASY_AUTH})
    for app in run.of_type(WEBAPP) + run.of_type(SLOT):
        assert "ipSecurityRestrictions" not in app.get("siteConfig")
    assert run.one(AUTH).get("httpSettings") == {"requireHttps": True}


@pytest.mark.parametrize("count", [1, 3])
def test_every_front_door_payload_of_the_stack_matches_its_azure_shape(multi_region, count):
    run = multi_region(count, frontDoorSku="Premium")
    assert run.one("azure-native:cdn:Profile").get("sku.name") == "Premium_AzureFrontDoor"
    origins = {o.get("hostName") for o in run.of_type("azure-native:cdn:AFDOrigin")}
    assert origins == {s.outputs["defaultHostName"] for s in run.of_type(WEBAPP)}
    for registration in run.resources:
        if registration.type in SHAPES and registration.parent.endswith("front-door"):
            assert not shape_errors(registration), (registration.name, shape_errors(registration))


def test_front_door_is_the_mcp_url_and_each_region_keeps_its_own(multi_region):
    run = multi_region(2)
    sites = {s.get("location"): s for s in run.of_type(WEBAPP)}
    assert run.outputs["mcpUrl"].value == f"https://{ENDPOINT_HOST}/mcp"
    assert run.outputs["regionUrls"].value == {
        region: f"https://{sites[region].outputs['defaultHostName']}" for region in REGIONS[:2]
    }


def test_each_region_tells_its_app_where_it_runs(multi_region):
    run = multi_region(2)
    for settings in run.of_type("azure-native:web:WebAppApplicationSettings"):
        site = next(s for s in run.of_type(WEBAPP) if s.outputs["name"] == settings.get("name"))
        assert app_settings(settings)["MCP_REGION"] == site.get("location")


def test_the_workbook_charts_every_regions_plan_site_and_autoscale(multi_region):
    run = multi_region(3)
    in_region = {
        kind: {r.get("location"): r.outputs["id"] for r in run.of_type(kind)}
        for kind in ("azure-native:web:AppServicePlan", WEBAPP, "azure-native:monitor:AutoscaleSetting")
    }
    plans, sites, autoscale = in_region.values()
    expected = build_workbook(
        [StampCharts(region, plans[region], sites[region], autoscale[region]) for region in REGIONS],
        run.one("azure-native:operationalinsights:Workspace").outputs["id"],
        front_door=True,
    )
    assert json.loads(run.one("azure-native:applicationinsights:Workbook").get("serializedData")) == expected


def test_several_regions_run_as_a_preview(infra):
    # In a preview Front Door's id and the sites' host names are unknown: the deferred outputs still resolve.
    config = {**infra.stack_config("prod"), "regions": "westeurope,northeurope", "frontDoor": True, "swap": "1"}
    run = infra.run_main(config, preview=True)
    assert len(run.of_type(STAMP)) == 2
    assert len(run.of_type("azure-native:cdn:AFDOrigin")) == 2
    assert len([c for c in run.of_type("command:local:Command") if c.name.startswith("rollout-")]) == 6
