"""Site: the production WebApp, secure by default, reading its key rings from Key Vault, optional Easy Auth."""

from __future__ import annotations

import dataclasses

from components.site import Site
from components.site_config import STARTUP_COMMAND
from tests.infra.builders import AUTH, INSIGHTS_ID, KEY_VAULT_SETTINGS, PLAN_ID, TAGS, VAULT_ID, site_args
from tests.infra.conftest import SITE_PRINCIPAL

WEBAPP = "azure-native:web:WebApp"
SETTINGS = "azure-native:web:WebAppApplicationSettings"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"


SUBNET_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Network/virtualNetworks/v1/subnets/app"


def run_site(infra, easy_auth=None, subnet_id=None, sink=None):
    def program():
        site = Site("mcp", dataclasses.replace(site_args(easy_auth=easy_auth), subnet_id=subnet_id))
        if sink is not None:
            sink.append(site)

    return infra.run(program)


def app_setting(run, name):
    return run.one(SETTINGS).get(f"properties.{name}")


def test_web_app_is_https_only_linux_without_affinity_with_a_system_identity(infra):
    run = run_site(infra)
    site = run.one(WEBAPP)
    inputs = site.inputs
    assert inputs["kind"] == "app,linux" and inputs["reserved"] is True
    assert inputs["serverFarmId"] == PLAN_ID
    assert inputs["httpsOnly"] is True
    assert inputs["clientAffinityEnabled"] is False
    assert inputs["identity"] == {"type": "SystemAssigned"}
    assert inputs["location"] == "westeurope" and inputs["resourceGroupName"] == "rg-mcp"
    assert inputs["tags"] == {**TAGS, "component": "site"}
    assert site.get("siteConfig.appCommandLine") == STARTUP_COMMAND
    assert app_setting(run, "MCP_SLOT_NAME") == "production"


def test_with_a_subnet_the_site_joins_it_and_routes_all_outbound_traffic_into_the_network(infra):
    site = run_site(infra, subnet_id=SUBNET_ID).one(WEBAPP)
    assert site.get("virtualNetworkSubnetId") == SUBNET_ID
    assert site.get("outboundVnetRouting") == {"allTraffic": True}


def test_without_a_subnet_the_site_is_in_no_virtual_network(infra):
    site = run_site(infra).one(WEBAPP)
    assert "virtualNetworkSubnetId" not in site.inputs
    assert "outboundVnetRouting" not in site.inputs


def test_basic_auth_publishing_is_off_for_ftp_and_scm_after_the_site_exists(infra):
    run = run_site(infra)
    site = run.one(WEBAPP)
    for token in ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"):
        policy = run.one(token)
        assert policy.inputs == {"name": site.outputs["name"], "resourceGroupName": "rg-mcp", "allow": False}
        assert site.urn in policy.dependencies
        assert policy.parent == site.parent


def test_every_resource_is_a_child_of_the_site_component(infra):
    run = run_site(infra, easy_auth=AUTH)
    component = run.one("mcpscale:azure:Site")
    children = run.children_of(component)
    assert sorted(r.type for r in children) == sorted(
        [
            WEBAPP,
            SETTINGS,
            "azure-native:web:WebAppFtpAllowed",
            "azure-native:web:WebAppScmAllowed",
            "azure-native:web:WebAppAuthSettingsV2",
            ROLE_ASSIGNMENT,
            ROLE_ASSIGNMENT,
        ]
    )
    assert len(children) == len(run.resources) - 1


def test_key_rings_are_key_vault_references_and_the_settings_are_no_secret(infra):
    run = run_site(infra)
    for name, reference in KEY_VAULT_SETTINGS.items():
        assert app_setting(run, name) == reference
    assert not run.one(SETTINGS).is_secret("properties")
    assert not run.one(WEBAPP).is_secret("siteConfig")


def test_app_settings_are_set_on_the_site_once_its_identity_holds_every_grant(infra):
    # An unresolved Key Vault reference reaches the app as the literal string, so the references must first be
    # resolved by an identity already allowed to read the vault (Learn: Key Vault references, ARM deployment).
    run = run_site(infra)
    site, settings = run.one(WEBAPP), run.one(SETTINGS)
    assert "appSettings" not in site.get("siteConfig")
    assert settings.get("name") == site.outputs["name"] and settings.get("resourceGroupName") == "rg-mcp"
    assignments = run.of_type(ROLE_ASSIGNMENT)
    assert len(assignments) == 2
    assert {site.urn, *(a.urn for a in assignments)} <= settings.dependencies


def test_the_site_identity_holds_each_grant_on_its_resource(infra):
    run = run_site(infra)
    site = run.one(WEBAPP)
    assignments = {a.name: a for a in run.of_type(ROLE_ASSIGNMENT)}
    assert {name: a.inputs for name, a in assignments.items()} == {
        "mcp-secrets-user": {
            "scope": VAULT_ID,
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
            "4633458b-17de-408a-b874-0445c86b69e6",
            "principalId": SITE_PRINCIPAL,
            "principalType": "ServicePrincipal",
        },
        "mcp-metrics-publisher": {
            "scope": INSIGHTS_ID,
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
            "3913510d-42f4-4e42-8a64-420c390055eb",
            "principalId": SITE_PRINCIPAL,
            "principalType": "ServicePrincipal",
        },
    }
    for assignment in assignments.values():
        assert site.urn in assignment.property_dependencies["principalId"]


def test_easy_auth_is_off_by_default(infra):
    assert run_site(infra).of_type("azure-native:web:WebAppAuthSettingsV2") == []


def test_easy_auth_guards_the_site_once_it_exists(infra):
    run = run_site(infra, easy_auth=AUTH)
    site = run.one(WEBAPP)
    auth = run.one("azure-native:web:WebAppAuthSettingsV2")
    assert auth.get("name") == site.outputs["name"]
    assert auth.get("globalValidation.unauthenticatedClientAction") == "Return401"
    assert site.urn in auth.dependencies


def test_outputs_name_the_site_its_group_and_https_url(infra):
    sink = []
    run = run_site(infra, sink=sink)
    site = run.one(WEBAPP)
    seen = {}

    async def resolve():
        seen["url"] = await sink[0].url.future()
        seen["group"] = await sink[0].resource_group_name.future()
        seen["id"] = await sink[0].id.future()

    infra.run(resolve)
    assert seen == {
        "url": f"https://{site.outputs['defaultHostName']}",
        "group": "rg-mcp",
        "id": site.outputs["id"],
    }
