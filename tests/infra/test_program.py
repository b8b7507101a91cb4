"""The stack program (__main__.py) with each stack file's config, and with bad config."""

from __future__ import annotations

import importlib
import inspect
from pathlib import PurePosixPath

import pytest
import yaml

from components.package import PROJECT_ROOT, build_package
from components.settings import ConfigError
from tests.infra.conftest import PROJECT_FILE, ROOT
from tests.team_server import SERVER, write_team_server

PLAN = "azure-native:web:AppServicePlan"
SETTING = "azure-native:monitor:AutoscaleSetting"
WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"

PROD_AZURE_RESOURCES = {
    "azure-native:resources:ResourceGroup": 1,
    PLAN: 1,
    SETTING: 1,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:applicationinsights:Workbook": 1,
    WEBAPP: 1,
    "azure-native:web:WebAppFtpAllowed": 1,
    "azure-native:web:WebAppScmAllowed": 1,
    SLOT: 1,
    "azure-native:web:WebAppSlotConfigurationNames": 1,
    "azure-native:web:WebAppFtpAllowedSlot": 1,
    "azure-native:web:WebAppScmAllowedSlot": 1,
}
DEV_AZURE_RESOURCES = {
    "azure-native:resources:ResourceGroup": 1,
    PLAN: 1,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:applicationinsights:Workbook": 1,
    WEBAPP: 1,
    "azure-native:web:WebAppFtpAllowed": 1,
    "azure-native:web:WebAppScmAllowed": 1,
}
INFRA_OUTPUTS = {
    "resourceGroup",
    "siteName",
    "siteUrl",
    "mcpUrl",
    "stagingMcpUrl",
    "appInsightsName",
    "workbookId",
    "autoscaleRange",
}
EASY_AUTH = {
    "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "authTenantId": "11111111-2222-3333-4444-555555555555",
}


def azure_resources(run) -> dict[str, int]:
    return {token: count for token, count in run.types().items() if token.startswith("azure-native:")}


def app_settings(registration) -> dict[str, str]:
    return {p["name"]: p["value"] for p in registration.get("siteConfig.appSettings")}


@pytest.fixture
def prod(infra):
    return infra.stack_config("prod")


@pytest.fixture
def dev(infra):
    return infra.stack_config("dev")


def test_prod_stack_resources(infra, prod):
    run = infra.run_main(prod)
    assert azure_resources(run) == PROD_AZURE_RESOURCES
    assert len(run.of_type("random:index/randomPassword:RandomPassword")) == 1
    plan = run.one(PLAN)
    assert plan.get("sku") == {"name": "P0v3", "tier": "PremiumV3", "capacity": 3}
    assert plan.ignore_changes == ["sku.capacity"]
    (profile,) = run.one(SETTING).get("profiles")
    assert profile["capacity"] == {"minimum": "3", "default": "3", "maximum": "10"}
    assert run.one(SETTING).get("targetResourceUri") == plan.outputs["id"]
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert site.get("serverFarmId") == plan.outputs["id"] == slot.get("serverFarmId")
    assert app_settings(site)["MCP_SLOT_NAME"] == "production"
    assert app_settings(slot)["MCP_SLOT_NAME"] == "staging"
    assert app_settings(site)["WEB_CONCURRENCY"] == "1"


def test_prod_stack_outputs(infra, prod):
    run = infra.run_main(prod)
    site, slot = run.one(WEBAPP), run.one(SLOT)
    host = site.outputs["defaultHostName"]
    values = {name: export.value for name, export in run.outputs.items() if name in INFRA_OUTPUTS}
    assert values == {
        "resourceGroup": run.one("azure-native:resources:ResourceGroup").outputs["name"],
        "siteName": site.outputs["name"],
        "siteUrl": f"https://{host}",
        "mcpUrl": f"https://{host}/mcp",
        "stagingMcpUrl": f"https://{slot.outputs['defaultHostName']}/mcp",
        "appInsightsName": run.one("azure-native:applicationinsights:Component").outputs["name"],
        "workbookId": run.one("azure-native:applicationinsights:Workbook").outputs["id"],
        "autoscaleRange": "3..10",
    }


def test_dev_stack_is_one_basic_instance_without_slot_or_autoscale(infra, dev):
    run = infra.run_main(dev)
    assert azure_resources(run) == DEV_AZURE_RESOURCES
    plan = run.one(PLAN)
    assert plan.get("sku") == {"name": "B1", "tier": "Basic", "capacity": 1}
    assert plan.ignore_changes == []
    assert app_settings(run.one(WEBAPP))["MCP_SLOT_NAME"] == "production"
    assert run.outputs["stagingMcpUrl"].value is None
    assert run.outputs["autoscaleRange"].value == "off"


def test_project_runs_python_with_the_uv_toolchain():
    project = yaml.safe_load(PROJECT_FILE.read_text())
    assert project["name"] == "mcpscale-azure"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}


def test_stack_files_only_set_keys_the_project_declares(infra):
    declared = {f"mcpscale-azure:{key}" for key in yaml.safe_load(PROJECT_FILE.read_text())["config"]}
    for stack in ("dev", "prod"):
        keys = set(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])
        assert keys - declared == {"azure-native:location"}, stack


@pytest.mark.parametrize("count", range(1, 11))
def test_instance_count_sets_plan_capacity_and_autoscale_minimum(infra, prod, count):
    run = infra.run_main({**prod, "mcpscale-azure:instanceCount": count})
    assert run.one(PLAN).get("sku.capacity") == count
    (profile,) = run.one(SETTING).get("profiles")
    assert (profile["capacity"]["minimum"], profile["capacity"]["default"]) == (str(count), str(count))
    assert profile["capacity"]["maximum"] == "10"
    assert run.outputs["autoscaleRange"].value == f"{count}..10"


@pytest.mark.parametrize("value", [0, 11, -1, "three", 2.5])
def test_bad_instance_count_fails_before_any_resource_registers(infra, prod, value):
    with pytest.raises(ConfigError, match=r"mcpscale-azure:instanceCount = '.*' is not allowed") as raised:
        infra.run_main({**prod, "mcpscale-azure:instanceCount": value})
    assert str(value) in str(raised.value)
    assert infra.last.resources == []


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        ({"mcpscale-azure:sku": "B1"}, ["mcpscale-azure:autoscale", "mcpscale-azure:stagingSlot"]),
        ({"mcpscale-azure:sku": "B1", "mcpscale-azure:autoscale": False}, ["mcpscale-azure:stagingSlot"]),
        ({"mcpscale-azure:sku": "S1", "mcpscale-azure:autoscaleMaxCount": 20}, ["mcpscale-azure:autoscaleMaxCount"]),
        ({"mcpscale-azure:stagingSlot": False, "mcpscale-azure:swap": "1"}, ["mcpscale-azure:swap"]),
    ],
)
def test_sku_and_feature_conflicts_fail_before_any_resource_registers(infra, prod, change, keys):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**prod, **change})
    assert [p.split(" ")[0] for p in raised.value.problems] == keys
    assert infra.last.resources == []


def test_dev_stack_rejects_turning_on_features_basic_lacks(infra, dev):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**dev, "mcpscale-azure:stagingSlot": True})
    assert "deployment slots need a Standard or Premium sku, and sku B1 is Basic" in str(raised.value)
    assert infra.last.resources == []


def test_handle_keys_never_reach_outputs_in_plain(infra, prod):
    ring = "k2:" + "n" * 40 + ",k1:" + "o" * 40
    run = infra.run_main({**prod, "mcpscale-azure:handleKeys": ring}, secret_keys=["handleKeys"])
    for registration in (run.one(WEBAPP), run.one(SLOT)):
        assert app_settings(registration)["MCP_HANDLE_KEYS"] == ring
        assert registration.is_secret("siteConfig.appSettings")
    assert run.of_type("random:index/randomPassword:RandomPassword") == []
    for name, export in run.outputs.items():
        assert "n" * 40 not in str(export.value) and "o" * 40 not in str(export.value), name


def test_generated_handle_key_never_reaches_outputs_in_plain(infra, prod):
    run = infra.run_main(prod)
    secret = run.one("random:index/randomPassword:RandomPassword").outputs["result"]
    assert app_settings(run.one(WEBAPP))["MCP_HANDLE_KEYS"].endswith(secret)
    assert run.one(WEBAPP).is_secret("siteConfig.appSettings")
    for name, export in run.outputs.items():
        assert secret not in str(export.value) or export.secret, name


def test_every_taggable_resource_carries_project_stack_and_component_tags(infra, prod):
    run = infra.run_main({**prod, **EASY_AUTH})
    checked = 0
    for registration in run.resources:
        if not registration.type.startswith("azure-native:"):
            continue
        _, module_name, class_name = registration.type.split(":")
        cls = getattr(importlib.import_module(f"pulumi_azure_native.{module_name}"), class_name)
        if "tags" not in inspect.signature(cls._internal_init).parameters:
            continue  # ARM sub-resources (publishing policies, auth settings, slot setting names) have no tags
        tags = registration.get("tags")
        assert tags.keys() == {"project", "stack", "component"}, registration.name
        assert (tags["project"], tags["stack"]) == ("mcpscale-azure", "test")
        checked += 1
    assert checked == 8


def test_easy_auth_guards_site_and_slot_and_publishes_protected_resource_metadata(infra, prod):
    run = infra.run_main({**prod, **EASY_AUTH})
    assert run.one("azure-native:web:WebAppAuthSettingsV2").get("globalValidation.excludedPaths") == ["/health"]
    assert run.one("azure-native:web:WebAppAuthSettingsV2Slot").get("slot") == "staging"
    for registration in (run.one(WEBAPP), run.one(SLOT)):
        assert app_settings(registration)["WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES"] == (
            "api://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/user_impersonation"
        )


def test_components_are_wired_to_each_other(infra, prod):
    run = infra.run_main(prod)
    plan = run.one("mcpscale:azure:Plan")
    assert run.one(PLAN).parent == plan.urn
    site = run.one(WEBAPP)
    insights = run.one("azure-native:applicationinsights:Component")
    assert app_settings(site)["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights.outputs["connectionString"]
    assert {run.one(PLAN).urn, insights.urn} <= site.dependencies
    workbook = run.one("azure-native:applicationinsights:Workbook")
    assert {run.one(PLAN).urn, run.one(SETTING).urn} <= workbook.dependencies
    assert run.one(PLAN).outputs["id"] in workbook.get("serializedData")


def test_program_runs_as_a_preview(infra, prod):
    run = infra.run_main(prod, preview=True)
    assert azure_resources(run) == PROD_AZURE_RESOURCES


def test_site_and_slot_run_the_team_server_from_its_folder(infra, prod, tmp_path):
    folder = write_team_server(tmp_path / "acme")
    run = infra.run_main({**prod, "mcpscale-azure:server": SERVER, "mcpscale-azure:serverSource": str(folder)})
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert app_settings(site)["MCP_SERVER"] == app_settings(slot)["MCP_SERVER"] == SERVER
    assert site.get("siteConfig.appCommandLine") == slot.get("siteConfig.appCommandLine")
    expected = build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip"), source=folder)
    assert run.outputs["packageSha256"].value == expected.sha256
    assert "acme_tools/server.py" in expected.entries


def test_the_default_stack_serves_the_bundled_demo(infra, prod):
    run = infra.run_main(prod)
    assert app_settings(run.one(WEBAPP))["MCP_SERVER"] == app_settings(run.one(SLOT))["MCP_SERVER"]
    assert app_settings(run.one(WEBAPP))["MCP_SERVER"] == "app.demo.server:server"


@pytest.mark.parametrize(
    ("files", "server", "key"),
    [
        ({}, "acme_tools/server:mcp", "server"),  # bad syntax
        ({}, "acme_tools.api:mcp", "server"),  # module not in the folder
        ({"requirements.txt": None}, SERVER, "serverSource"),  # no dependency file
        ({"requirements.txt": "mcp<2\n"}, SERVER, "serverSource"),  # conflicts with the host's pin
        ({"app.py": ""}, SERVER, "serverSource"),  # would shadow the host
    ],
)
def test_bad_server_values_fail_before_any_resource_registers(infra, prod, tmp_path, files, server, key):
    folder = write_team_server(tmp_path / "acme", files)
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**prod, "mcpscale-azure:server": server, "mcpscale-azure:serverSource": str(folder)})
    (problem,) = raised.value.problems
    value = server if key == "server" else str(folder)
    assert problem.startswith(f"mcpscale-azure:{key} = {value!r} is not allowed: ")
    assert infra.last.resources == []


def test_a_missing_server_source_fails_before_any_resource_registers(infra, prod, tmp_path):
    with pytest.raises(ConfigError, match="mcpscale-azure:serverSource = '../no-such-folder' is not allowed"):
        infra.run_main({**prod, "mcpscale-azure:server": SERVER, "mcpscale-azure:serverSource": "../no-such-folder"})
    assert infra.last.resources == []
