"""Staging slot: same site config from the same function, sticky slot name, same security baseline."""

from __future__ import annotations

import dataclasses

from components.site import Site
from components.staging_slot import StagingSlot, StagingSlotArgs
from tests.infra.builders import AUTH, KEY_VAULT_SETTINGS, PLAN_ID, TAGS, site_args
from tests.infra.conftest import SLOT_PRINCIPAL

WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"
SITE_SETTINGS = "azure-native:web:WebAppApplicationSettings"
SLOT_SETTINGS = "azure-native:web:WebAppApplicationSettingsSlot"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"


def run_slot(infra, easy_auth=None, subnet_id=None, sink=None):
    def program():
        args = site_args(
            easy_auth=easy_auth,
            python_version="3.11",
            workers=2,
            allowed_origins=("https://a.example",),
        )
        args = dataclasses.replace(args, subnet_id=subnet_id)
        slot = StagingSlot("staging", StagingSlotArgs(site=Site("mcp", args), tags=TAGS))
        if sink is not None:
            sink.append(slot)

    return infra.run(program)


def without_slot_name(settings: dict) -> dict:
    return {name: value for name, value in settings.items() if name != "MCP_SLOT_NAME"}


def test_slot_is_a_staging_slot_of_the_site_on_the_same_plan(infra):
    run = run_slot(infra)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert slot.get("name") == site.outputs["name"]
    assert slot.get("slot") == "staging"
    assert slot.get("serverFarmId") == PLAN_ID
    assert slot.get("location") == "westeurope" and slot.get("resourceGroupName") == "rg-mcp"
    assert site.urn in slot.dependencies
    assert slot.get("tags") == {**TAGS, "component": "staging-slot"}


def test_slot_joins_the_site_subnet_with_the_same_routing(infra):
    subnet_id = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Network/virtualNetworks/v1/subnets/app"
    run = run_slot(infra, subnet_id=subnet_id)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    for key in ("virtualNetworkSubnetId", "outboundVnetRouting"):
        assert slot.get(key) == site.get(key), key
    assert slot.get("virtualNetworkSubnetId") == subnet_id


def test_slot_has_the_same_security_baseline_as_the_site(infra):
    run = run_slot(infra)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    for key in ("kind", "reserved", "httpsOnly", "clientAffinityEnabled", "identity"):
        assert slot.get(key) == site.get(key), key
    assert slot.get("httpsOnly") is True and slot.get("clientAffinityEnabled") is False


def test_slot_config_and_settings_are_the_sites_but_for_the_slot_name(infra):
    run = run_slot(infra)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert slot.get("siteConfig") == site.get("siteConfig")
    site_settings, slot_settings = run.one(SITE_SETTINGS).get("properties"), run.one(SLOT_SETTINGS).get("properties")
    assert without_slot_name(slot_settings) == without_slot_name(site_settings)
    assert (site_settings["MCP_SLOT_NAME"], slot_settings["MCP_SLOT_NAME"]) == ("production", "staging")


def test_slot_reads_the_same_key_vault_secrets_and_its_settings_are_no_secret(infra):
    run = run_slot(infra)
    settings = run.one(SLOT_SETTINGS)
    assert {name: settings.get("properties")[name] for name in KEY_VAULT_SETTINGS} == KEY_VAULT_SETTINGS
    assert not settings.is_secret("properties")
    assert not run.one(SLOT).is_secret("siteConfig")


def test_slot_settings_are_set_once_the_slot_identity_holds_every_grant_and_the_names_are_sticky(infra):
    run = run_slot(infra)
    site, slot, settings = run.one(WEBAPP), run.one(SLOT), run.one(SLOT_SETTINGS)
    assert "appSettings" not in slot.get("siteConfig")
    assert (settings.get("name"), settings.get("slot")) == (site.outputs["name"], "staging")
    slot_grants = [a.urn for a in run.of_type(ROLE_ASSIGNMENT) if a.name.startswith("staging-")]
    assert len(slot_grants) == 2
    sticky = run.one("azure-native:web:WebAppSlotConfigurationNames")
    assert {slot.urn, sticky.urn, *slot_grants} <= settings.dependencies


def test_the_slot_identity_holds_the_same_grants_as_the_site(infra):
    run = run_slot(infra)
    slot = run.one(SLOT)
    component = run.one("mcpscale:azure:StagingSlot")
    site_grants = {a.name.removeprefix("mcp-"): a for a in run.of_type(ROLE_ASSIGNMENT) if a.name.startswith("mcp-")}
    slot_grants = {
        a.name.removeprefix("staging-"): a for a in run.of_type(ROLE_ASSIGNMENT) if a.name.startswith("staging-")
    }
    assert set(slot_grants) == set(site_grants) == {"secrets-user", "metrics-publisher"}
    for label, assignment in slot_grants.items():
        assert assignment.get("principalId") == SLOT_PRINCIPAL
        assert assignment.parent == component.urn
        assert slot.urn in assignment.property_dependencies["principalId"]
        expected = {**site_grants[label].inputs, "principalId": SLOT_PRINCIPAL}
        assert assignment.inputs == expected, label


def test_slot_name_setting_is_sticky(infra):
    run = run_slot(infra)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    sticky = run.one("azure-native:web:WebAppSlotConfigurationNames")
    assert sticky.inputs == {
        "name": site.outputs["name"],
        "resourceGroupName": "rg-mcp",
        "appSettingNames": ["MCP_SLOT_NAME"],
    }
    assert slot.urn in sticky.dependencies


def test_basic_auth_publishing_is_off_on_the_slot(infra):
    run = run_slot(infra)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    for token in ("azure-native:web:WebAppFtpAllowedSlot", "azure-native:web:WebAppScmAllowedSlot"):
        policy = run.one(token)
        assert policy.inputs == {
            "name": site.outputs["name"],
            "slot": "staging",
            "resourceGroupName": "rg-mcp",
            "allow": False,
        }
        assert slot.urn in policy.dependencies


def test_slot_gets_the_same_easy_auth_as_the_site(infra):
    assert run_slot(infra).of_type("azure-native:web:WebAppAuthSettingsV2Slot") == []
    run = run_slot(infra, easy_auth=AUTH)
    site_auth = run.one("azure-native:web:WebAppAuthSettingsV2")
    slot_auth = run.one("azure-native:web:WebAppAuthSettingsV2Slot")
    assert slot_auth.get("slot") == "staging"
    assert {k: v for k, v in slot_auth.inputs.items() if k != "slot"} == site_auth.inputs
    assert run.one(SLOT).urn in slot_auth.dependencies


def test_slot_resources_are_children_of_the_slot_component_and_listed_for_delivery(infra):
    sink = []
    run = run_slot(infra, easy_auth=AUTH, sink=sink)
    component = run.one("mcpscale:azure:StagingSlot")
    children = run.children_of(component)
    assert sorted(r.type for r in children) == sorted(
        [
            SLOT,
            "azure-native:web:WebAppSlotConfigurationNames",
            "azure-native:web:WebAppFtpAllowedSlot",
            "azure-native:web:WebAppScmAllowedSlot",
            "azure-native:web:WebAppAuthSettingsV2Slot",
            SLOT_SETTINGS,
            ROLE_ASSIGNMENT,
            ROLE_ASSIGNMENT,
        ]
    )
    slot = sink[0]
    assert slot.slot_name == "staging"
    assert len(slot.resources) == len(children)
