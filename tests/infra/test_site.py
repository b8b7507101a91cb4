"""Site: the production WebApp, secure by default, with its key ring and optional Easy Auth."""

from __future__ import annotations

import pulumi

from components.site import GENERATED_KEY_ID, Site
from components.site_config import STARTUP_COMMAND
from tests.infra.builders import AUTH, PLAN_ID, TAGS, site_args

WEBAPP = "azure-native:web:WebApp"
RING = "k7:" + "r" * 40


def run_site(infra, handle_keys=None, easy_auth=None, sink=None):
    def program():
        site = Site("mcp", site_args(handle_keys=handle_keys, easy_auth=easy_auth))
        if sink is not None:
            sink.append(site)

    return infra.run(program)


def app_setting(registration, name):
    (value,) = [p["value"] for p in registration.get("siteConfig.appSettings") if p["name"] == name]
    return value


def test_web_app_is_https_only_linux_without_affinity_with_a_system_identity(infra):
    site = run_site(infra).one(WEBAPP)
    inputs = site.inputs
    assert inputs["kind"] == "app,linux" and inputs["reserved"] is True
    assert inputs["serverFarmId"] == PLAN_ID
    assert inputs["httpsOnly"] is True
    assert inputs["clientAffinityEnabled"] is False
    assert inputs["identity"] == {"type": "SystemAssigned"}
    assert inputs["location"] == "westeurope" and inputs["resourceGroupName"] == "rg-mcp"
    assert inputs["tags"] == {**TAGS, "component": "site"}
    assert site.get("siteConfig.appCommandLine") == STARTUP_COMMAND
    assert app_setting(site, "MCP_SLOT_NAME") == "production"


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
            "random:index/randomPassword:RandomPassword",
            WEBAPP,
            "azure-native:web:WebAppFtpAllowed",
            "azure-native:web:WebAppScmAllowed",
            "azure-native:web:WebAppAuthSettingsV2",
        ]
    )
    assert len(children) == len(run.resources) - 1


def test_without_handle_keys_a_random_key_is_generated_and_used_as_a_secret(infra):
    run = run_site(infra)
    password = run.one("random:index/randomPassword:RandomPassword")
    assert password.inputs == {"length": 48, "special": False}
    site = run.one(WEBAPP)
    assert app_setting(site, "MCP_HANDLE_KEYS") == f"{GENERATED_KEY_ID}:{password.outputs['result']}"
    assert site.is_secret("siteConfig.appSettings")
    assert password.urn in site.property_dependencies["siteConfig"]


def test_configured_handle_keys_are_used_and_nothing_is_generated(infra):
    run = run_site(infra, handle_keys=pulumi.Output.secret(RING))
    assert run.of_type("random:index/randomPassword:RandomPassword") == []
    site = run.one(WEBAPP)
    assert app_setting(site, "MCP_HANDLE_KEYS") == RING
    assert site.is_secret("siteConfig.appSettings")


def test_site_exposes_its_key_ring_config_for_the_slot(infra):
    sink = []
    run_site(infra, handle_keys=RING, sink=sink)
    assert sink[0].app_config.handle_keys == RING


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
