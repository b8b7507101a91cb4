"""The stack program (__main__.py) with each stack file's config, and with bad config."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest
import yaml

from components.package import PROJECT_ROOT, SERVER_FILE, build_package
from components.settings import ConfigError
from tests.infra.conftest import PROJECT_FILE, ROOT, SITE_PRINCIPAL, SLOT_PRINCIPAL, StackRun, mocked_stack
from tests.team_server import SERVER, write_team_server

PLAN = "azure-native:web:AppServicePlan"
SETTING = "azure-native:monitor:AutoscaleSetting"
WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"
SITE_SETTINGS = "azure-native:web:WebAppApplicationSettings"
SLOT_SETTINGS = "azure-native:web:WebAppApplicationSettingsSlot"

SECRET = "azure-native:keyvault:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
PROD_AZURE_RESOURCES = {
    "azure-native:resources:ResourceGroup": 1,
    "azure-native:keyvault:Vault": 1,
    SECRET: 2,
    ROLE_ASSIGNMENT: 4,
    "azure-native:monitor:DiagnosticSetting": 2,
    "azure-native:monitor:MetricAlert": 4,
    PLAN: 1,
    SETTING: 1,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:applicationinsights:Workbook": 1,
    WEBAPP: 1,
    SITE_SETTINGS: 1,
    "azure-native:web:WebAppFtpAllowed": 1,
    "azure-native:web:WebAppScmAllowed": 1,
    SLOT: 1,
    SLOT_SETTINGS: 1,
    "azure-native:web:WebAppSlotConfigurationNames": 1,
    "azure-native:web:WebAppFtpAllowedSlot": 1,
    "azure-native:web:WebAppScmAllowedSlot": 1,
    # privateNetworking: the network, its two subnets, the vault's private endpoint and its DNS.
    "azure-native:network:VirtualNetwork": 1,
    "azure-native:network:Subnet": 2,
    "azure-native:network:PrivateEndpoint": 1,
    "azure-native:network:PrivateDnsZoneGroup": 1,
    "azure-native:privatedns:PrivateZone": 1,
    "azure-native:privatedns:VirtualNetworkLink": 1,
}
DEV_AZURE_RESOURCES = {
    "azure-native:resources:ResourceGroup": 1,
    "azure-native:keyvault:Vault": 1,
    SECRET: 2,
    ROLE_ASSIGNMENT: 2,
    "azure-native:monitor:DiagnosticSetting": 1,
    "azure-native:monitor:MetricAlert": 4,
    PLAN: 1,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:applicationinsights:Workbook": 1,
    WEBAPP: 1,
    SITE_SETTINGS: 1,
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
    # The prod stack refuses Easy Auth open to any client app unless it is meant (tests/infra/test_settings.py).
    "authAllowAnyClientApp": True,
}


def azure_resources(run) -> dict[str, int]:
    return {token: count for token, count in run.types().items() if token.startswith("azure-native:")}


def app_settings(registration) -> dict[str, str]:
    """The app settings of a WebAppApplicationSettings(Slot) registration."""
    return registration.get("properties")


@pytest.fixture
def prod(infra):
    return infra.stack_config("prod")


@pytest.fixture
def dev(infra):
    return infra.stack_config("dev")


@pytest.fixture(scope="module")
def prod_run() -> Iterator[StackRun]:
    """The prod stack as its Pulumi.prod.yaml sets it, run once for the module's tests that only read it."""
    with mocked_stack() as harness:
        yield harness.run_main(harness.stack_config("prod"))


def test_prod_stack_resources(prod_run):
    run = prod_run
    assert azure_resources(run) == PROD_AZURE_RESOURCES
    assert len(run.of_type(PASSWORD)) == 2
    plan = run.one(PLAN)
    assert plan.get("sku") == {"name": "P0v3", "tier": "Premium0V3", "capacity": 3}
    assert plan.get("zoneRedundant") is True
    assert plan.ignore_changes == []
    (profile,) = run.one(SETTING).get("profiles")
    assert profile["capacity"] == {"minimum": "3", "default": "3", "maximum": "10"}
    assert run.one(SETTING).get("targetResourceUri") == plan.outputs["id"]
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert site.get("serverFarmId") == plan.outputs["id"] == slot.get("serverFarmId")
    assert app_settings(run.one(SITE_SETTINGS))["MCP_SLOT_NAME"] == "production"
    assert app_settings(run.one(SLOT_SETTINGS))["MCP_SLOT_NAME"] == "staging"
    assert app_settings(run.one(SITE_SETTINGS))["WEB_CONCURRENCY"] == "1"


def test_prod_stack_outputs(prod_run):
    run = prod_run
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
    assert plan.get("zoneRedundant") is False
    assert app_settings(run.one(SITE_SETTINGS))["MCP_SLOT_NAME"] == "production"
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
    zones = count >= 3  # a zone-redundant plan needs three instances
    run = infra.run_main({**prod, "mcpscale-azure:instanceCount": count, "mcpscale-azure:zoneRedundant": zones})
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
        (
            {"mcpscale-azure:sku": "B1"},
            ["mcpscale-azure:autoscale", "mcpscale-azure:stagingSlot", "mcpscale-azure:zoneRedundant"],
        ),
        (
            {"mcpscale-azure:sku": "B1", "mcpscale-azure:autoscale": False},
            ["mcpscale-azure:stagingSlot", "mcpscale-azure:zoneRedundant"],
        ),
        (
            {"mcpscale-azure:sku": "S1", "mcpscale-azure:autoscaleMaxCount": 20},
            ["mcpscale-azure:autoscaleMaxCount", "mcpscale-azure:zoneRedundant"],
        ),
        ({"mcpscale-azure:instanceCount": 2}, ["mcpscale-azure:zoneRedundant"]),
        ({"mcpscale-azure:stagingSlot": False, "mcpscale-azure:swap": "1"}, ["mcpscale-azure:swap"]),
    ],
)
def test_sku_and_feature_conflicts_fail_before_any_resource_registers(infra, prod, change, keys):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**prod, **change})
    assert [p.split(" ")[0] for p in raised.value.problems] == keys
    assert infra.last.resources == []


def test_the_combinations_are_checked_once_per_run(infra, prod, monkeypatch):
    import components.settings

    # Every pass over the combinations starts with the sku tier's limits; count the passes there.
    checked = []
    check = components.settings._check_tier
    monkeypatch.setattr(components.settings, "_check_tier", lambda *args: checked.append(args) or check(*args))
    infra.run_main(prod)
    assert len(checked) == 1


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("stagingSlot", "deployment slots need a Standard or Premium sku, and sku B1 is Basic"),
        ("autoscale", "autoscale needs a Standard or Premium sku, and sku B1 is Basic"),
        ("zoneRedundant", "zone redundancy needs a Premium v2 or v3 sku, and sku B1 is Basic"),
    ],
)
def test_dev_stack_rejects_turning_on_features_basic_lacks(infra, dev, key, message):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**dev, f"mcpscale-azure:{key}": True})
    assert message in str(raised.value)
    assert infra.last.resources == []


def test_a_redeployment_never_lowers_the_instance_count_autoscale_set(infra, prod):
    first = infra.run_main(prod)
    plan_id = first.outputs["planId"].value
    assert plan_id == first.one(PLAN).outputs["id"]

    def last_deployment(args):
        if args.typ == "pulumi:pulumi:StackReference":
            assert args.inputs["name"] == "organization/mcpscale-azure/test"
            return {"outputs": {"planId": plan_id}}
        return None

    def live_plan(args):
        if args.token == "azure-native:web:getAppServicePlan":
            return {"sku": {"name": "P0v3", "tier": "Premium0V3", "capacity": 7}}
        return None

    second = infra.run_main(prod, computed=last_deployment, calls=live_plan)
    assert second.one(PLAN).get("sku.capacity") == 7


def secret_values(run) -> dict[str, str]:
    return {r.get("secretName"): r.get("properties.value") for r in run.of_type(SECRET)}


def test_configured_key_rings_go_to_key_vault_as_secrets_and_nowhere_else(infra, prod):
    handle = "k2:" + "n" * 40 + ",k1:" + "o" * 40
    request_state = "r1:" + "q" * 40
    config = {**prod, "mcpscale-azure:handleKeys": handle, "mcpscale-azure:requestStateKeys": request_state}
    run = infra.run_main(config, secret_keys=["handleKeys", "requestStateKeys"])
    assert run.of_type(PASSWORD) == []
    assert secret_values(run) == {"mcp-handle-keys": handle, "mcp-request-state-keys": request_state}
    for secret in run.of_type(SECRET):
        assert secret.is_secret("properties.value")
    for registration in run.resources:
        if registration.type != SECRET:
            assert "n" * 40 not in str(registration.inputs) and "q" * 40 not in str(registration.inputs)
    for registration in (run.one(WEBAPP), run.one(SLOT)):
        assert not registration.is_secret("siteConfig")
    for name, export in run.outputs.items():
        assert "n" * 40 not in str(export.value) and "q" * 40 not in str(export.value), name


def test_generated_key_rings_never_reach_outputs_in_plain(prod_run):
    run = prod_run
    generated = {p.outputs["result"] for p in run.of_type(PASSWORD)}
    assert len(generated) == 2
    values = secret_values(run)
    assert {v.removeprefix("k1:") for v in values.values()} == generated
    for name, export in run.outputs.items():
        assert not any(g in str(export.value) for g in generated) or export.secret, name


def test_site_and_slot_read_both_rings_from_the_vault_with_their_identities(prod_run):
    run = prod_run
    vault = run.one("azure-native:keyvault:Vault")
    uri = vault.outputs["properties"]["vaultUri"]
    for registration in (run.one(SITE_SETTINGS), run.one(SLOT_SETTINGS)):
        settings = app_settings(registration)
        assert settings["MCP_HANDLE_KEYS"] == f"@Microsoft.KeyVault(SecretUri={uri}secrets/mcp-handle-keys/)"
        assert settings["MCP_REQUEST_STATE_KEYS"] == (
            f"@Microsoft.KeyVault(SecretUri={uri}secrets/mcp-request-state-keys/)"
        )
        assert {s.urn for s in run.of_type(SECRET)} <= registration.dependencies
    readers = [a for a in run.of_type(ROLE_ASSIGNMENT) if a.get("scope") == vault.outputs["id"]]
    assert sorted(a.get("principalId") for a in readers) == sorted([SITE_PRINCIPAL, SLOT_PRINCIPAL])
    assert {a.get("roleDefinitionId").rsplit("/", 1)[1] for a in readers} == {"4633458b-17de-408a-b874-0445c86b69e6"}


def test_code_is_deployed_only_after_the_identities_hold_their_roles(prod_run):
    run = prod_run
    grants = {a.urn for a in run.of_type(ROLE_ASSIGNMENT)}
    assert len(grants) == 4
    for command in run.of_type("command:local:Command"):
        assert grants <= command.dependencies, command.name


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
    # 15, and privateNetworking's network, private endpoint, private DNS zone and its link.
    assert checked == 19


def test_easy_auth_guards_site_and_slot_and_publishes_protected_resource_metadata(infra, prod):
    run = infra.run_main({**prod, **EASY_AUTH})
    assert run.one("azure-native:web:WebAppAuthSettingsV2").get("globalValidation.excludedPaths") == ["/health"]
    assert run.one("azure-native:web:WebAppAuthSettingsV2Slot").get("slot") == "staging"
    for registration in (run.one(SITE_SETTINGS), run.one(SLOT_SETTINGS)):
        assert app_settings(registration)["WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES"] == (
            "api://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/user_impersonation"
        )


def test_tool_roles_reach_site_and_slot_as_mcp_tool_roles(infra, prod):
    roles = {"compute_primes": ["Primes.Run", "Admin"], "tally": ["Tally.Use"]}
    run = infra.run_main({**prod, **EASY_AUTH, "toolRoles": roles})
    for registration in (run.one(SITE_SETTINGS), run.one(SLOT_SETTINGS)):
        assert json.loads(app_settings(registration)["MCP_TOOL_ROLES"]) == roles, registration.name
    assert "MCP_TOOL_ROLES" not in app_settings(infra.run_main({**prod, **EASY_AUTH}).one(SITE_SETTINGS))


def test_bad_tool_roles_fail_before_any_resource_registers(infra, prod):
    with pytest.raises(ConfigError, match="toolRoles = .* unknown tool\\(s\\) talley"):
        infra.run_main({**prod, **EASY_AUTH, "toolRoles": {"talley": ["Tally.Use"]}})
    assert infra.last.resources == []


def test_components_are_wired_to_each_other(prod_run):
    run = prod_run
    plan = run.one("mcpscale:azure:Plan")
    assert run.one(PLAN).parent == plan.urn
    site, settings = run.one(WEBAPP), run.one(SITE_SETTINGS)
    insights = run.one("azure-native:applicationinsights:Component")
    assert app_settings(settings)["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights.outputs["connectionString"]
    assert run.one(PLAN).urn in site.dependencies and insights.urn in settings.dependencies
    workbook = run.one("azure-native:applicationinsights:Workbook")
    assert {run.one(PLAN).urn, run.one(SETTING).urn} <= workbook.dependencies
    assert run.one(PLAN).outputs["id"] in workbook.get("serializedData")


def test_program_runs_as_a_preview(infra, prod):
    run = infra.run_main(prod, preview=True)
    assert azure_resources(run) == PROD_AZURE_RESOURCES


def test_site_and_slot_publish_telemetry_with_their_identities(prod_run):
    run = prod_run
    insights = run.one("azure-native:applicationinsights:Component")
    assert insights.get("disableLocalAuth") is True
    publishers = [a for a in run.of_type(ROLE_ASSIGNMENT) if a.get("scope") == insights.outputs["id"]]
    assert sorted(a.get("principalId") for a in publishers) == sorted([SITE_PRINCIPAL, SLOT_PRINCIPAL])
    assert {a.get("roleDefinitionId").rsplit("/", 1)[1] for a in publishers} == {"3913510d-42f4-4e42-8a64-420c390055eb"}
    for registration in (run.one(SITE_SETTINGS), run.one(SLOT_SETTINGS)):
        assert app_settings(registration)["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


def test_logs_flow_before_code_is_deployed(prod_run):
    run = prod_run
    site, slot = run.one(WEBAPP), run.one(SLOT)
    logged = {d.get("resourceUri") for d in run.of_type("azure-native:monitor:DiagnosticSetting")}
    assert logged == {site.outputs["id"], slot.outputs["id"]}
    workspace = run.one("azure-native:operationalinsights:Workspace")
    assert {d.get("workspaceId") for d in run.of_type("azure-native:monitor:DiagnosticSetting")} == {
        workspace.outputs["id"]
    }
    diagnostics = {d.urn for d in run.of_type("azure-native:monitor:DiagnosticSetting")}
    for command in run.of_type("command:local:Command"):
        assert diagnostics <= command.dependencies, command.name


def test_the_dev_stack_on_basic_still_logs_and_alerts(infra, dev):
    run = infra.run_main(dev)
    assert len(run.of_type("azure-native:monitor:MetricAlert")) == 4
    assert run.of_type("azure-native:monitor:ActionGroup") == []


def test_alert_emails_reach_alerts_and_autoscale(infra, prod):
    run = infra.run_main({**prod, "mcpscale-azure:alertEmails": "ops@example.com"})
    group = run.one("azure-native:monitor:ActionGroup")
    assert [r["emailAddress"] for r in group.get("emailReceivers")] == ["ops@example.com"]
    for alert in run.of_type("azure-native:monitor:MetricAlert"):
        assert alert.get("actions") == [{"actionGroupId": group.outputs["id"]}]
    (notification,) = run.one(SETTING).get("notifications")
    assert notification["email"]["customEmails"] == ["ops@example.com"]


def test_allowed_client_apps_guard_site_and_slot(infra, prod):
    app = "aaaaaaaa-0000-0000-0000-000000000001"
    run = infra.run_main({**prod, **EASY_AUTH, "authAllowedClientApps": app})
    path = "identityProviders.azureActiveDirectory.validation.defaultAuthorizationPolicy.allowedApplications"
    for token in ("azure-native:web:WebAppAuthSettingsV2", "azure-native:web:WebAppAuthSettingsV2Slot"):
        assert run.one(token).get(path) == [app], token
    for setting in run.of_type("azure-native:monitor:DiagnosticSetting"):
        assert setting.get("logs")[-1] == {"category": "AppServiceAuthenticationLogs", "enabled": True}


def test_one_slot_configuration_names_resource_owns_every_sticky_setting(prod_run):
    run = prod_run
    sticky = run.one("azure-native:web:WebAppSlotConfigurationNames")
    assert sticky.inputs == {
        "name": run.one(WEBAPP).outputs["name"],
        "resourceGroupName": run.one(WEBAPP).get("resourceGroupName"),
        "appSettingNames": ["MCP_SLOT_NAME"],
    }
    # The key rings and telemetry settings travel with a swap: both slots share them.
    shared = set(app_settings(run.one(SITE_SETTINGS))) - {"MCP_SLOT_NAME"}
    assert {"MCP_HANDLE_KEYS", "MCP_REQUEST_STATE_KEYS", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} <= shared
    assert not shared & set(sticky.get("appSettingNames"))


def test_site_and_slot_run_the_team_server_from_its_folder(infra, prod, tmp_path):
    folder = write_team_server(tmp_path / "acme")
    run = infra.run_main({**prod, "mcpscale-azure:server": SERVER, "mcpscale-azure:serverSource": str(folder)})
    site, slot = run.one(WEBAPP), run.one(SLOT)
    # The choice travels in the package, with the code it names, not in an app setting both slots would share.
    for settings in (run.one(SITE_SETTINGS), run.one(SLOT_SETTINGS)):
        assert "MCP_SERVER" not in app_settings(settings)
    assert site.get("siteConfig.appCommandLine") == slot.get("siteConfig.appCommandLine")
    expected = build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip"), source=folder, server=SERVER)
    assert run.outputs["packageSha256"].value == expected.sha256
    assert {"acme_tools/server.py", SERVER_FILE} <= set(expected.entries)


def test_the_default_stack_serves_the_bundled_demo(prod_run):
    run = prod_run
    assert "MCP_SERVER" not in app_settings(run.one(SITE_SETTINGS))
    assert run.outputs["packageSha256"].value == build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip")).sha256
    assert SERVER_FILE not in build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip")).entries


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
